"""The settings of one distillation run and what both drivers (active learning in
:mod:`edgedistal.pipeline.distill`, labelled in :mod:`edgedistal.pipeline.distill_labelled`) derive
from them: the resume fingerprint, the milestone counts, the learner's recipe, the pool checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from edgedistal.acquire.loop import resolve_count
from edgedistal.data.distilled import MATERIALISE
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.models.train import TrainConfig

MODES = ("proxy", "full", "labelled")
#: Smallest pool worth distilling, and the smallest labelled set a detector can train on
#: (batch norm needs two samples per batch).
MIN_POOL = 8
MIN_SEED = 2


def learner_train(**changes: object) -> TrainConfig:
    """The learner's detector recipe: :class:`TrainConfig` at distill's defaults (64 px, 5 epochs:
    the learner is a proxy, smaller and shorter than `edgedistal train`'s 128 px, 10 epochs),
    with ``changes`` applied."""
    return replace(TrainConfig(image_size=64, epochs=5.0), **changes)  # type: ignore[arg-type]


#: The learner settings a run's ``config.json`` held flat before ``DistillConfig.train`` existed,
#: as (old name, TrainConfig name); kept flat in the fingerprint so those runs still resume.
FLAT_TRAIN = (("backbone", "backbone"), ("image_size", "image_size"), ("steps", "max_steps"),
              ("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("drop_rate", "drop_rate"),
              ("amp", "amp"), ("train_patience", "patience"))
#: Run-level settings the learner's TrainConfig takes from the run (one source each).
RUN_LEVEL = ("seed", "device", "num_threads")


@dataclass
class DistillConfig:
    """Settings of one run. Fractions (``0.2``) are of the pool; numbers > 1 are counts.

    ``train`` is the learner's detector recipe (:func:`learner_train`); its ``seed``, ``device``
    and ``num_threads`` are the run's own (``seed`` also seeds the loop, ``device`` also runs the
    strategies), so they are set here and copied into ``train``.
    """

    budget: float = 0.2
    #: Snapshots written on the way (fractions or counts); each ends a round. None: the default
    #: budget curve up to ``budget`` (:func:`auto_milestones`, resolved by ``run_distill`` once the
    #: pool is known), or none when ``rounds``/``batch`` fix the schedule; (): none.
    milestones: tuple[float, ...] | None = None
    strategy: str = "hybrid"
    strategy_kw: dict = field(default_factory=dict)  # e.g. {"beta": 4, "score": "margin"}
    balanced: bool = False
    #: The dataset being distilled is labelled, so label-aware wrappers (balanced, paired) may read
    #: every pool row's label; False simulates active learning (labels only for picked rows).
    label_aware: bool = True
    #: > 0: at most this many picks per group per round (CLI ``--group-spread``, the groupspread+
    #: wrapper; the field keeps its old name so old runs' fingerprints still match)
    group_cap: int = 0
    seed_size: float = 0.05
    seed_strategy: str = "random"  # or "kcenter" (on label-free thumbnails)
    rounds: int | None = None  # equal rounds after the seed set (default 5) ...
    batch: float | None = None  # ... or a per-round batch (fraction or count)
    mode: str = "proxy"
    train: TrainConfig = field(default_factory=learner_train)
    mc_dropout: int = 0
    refresh_every: int = 0
    head_c: float = 1.0
    patience: int = 0  # stop after this many rounds without a val-AUC gain (0: off)
    min_delta: float = 0.002
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    materialise: str = "none"
    num_threads: int | None = None
    # labelled mode (edgedistal.pipeline.distill_labelled): proxy scorings over its run, out-of-fold
    # folds, and a learner/ folder of another labelled run whose dynamics to reuse
    checkpoints: int = 6
    folds: int = 0
    dynamics_dir: str | None = None
    #: An `edgedistal score` folder (scores.parquet + embeddings.npy of the pool): select from
    #: those scores instead of training a learner (see :func:`scores_learner`).
    scores_dir: str | None = None
    #: A detector checkpoint that scores the pool once here (torch, the `score` command's
    #: scorer) into OUT/scores; then the same selection as with ``scores_dir``.
    checkpoint: str | None = None
    #: An embedder (``edgedistal pretrain``'s embedder.pt) that scores the pool once here into
    #: OUT/scores; selection then runs in its space (embedding strategies only: it has no probabilities).
    embedder: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):  # read back from config.json
            self.train = TrainConfig(**self.train)
        default = TrainConfig()
        for k in RUN_LEVEL:  # the learner takes the run's value: refuse one it would override
            mine, theirs = getattr(self, k), getattr(self.train, k)
            if theirs != getattr(default, k) and theirs != mine:
                raise EdgedistalError(f"train.{k}={theirs!r} differs from the run's {k}={mine!r}",
                                      f"set {k} on DistillConfig (the learner takes the run's)")

    def to_dict(self) -> dict[str, Any]:
        """``config.json``'s ``config``: ``train`` without the run-level keys it takes from the run."""
        d = asdict(self)
        for k in RUN_LEVEL:
            d["train"].pop(k)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DistillConfig:
        """A config from ``config.json``'s ``config``: nested (``train``) or the flat form of runs
        made before it (``backbone``, ``steps``, ``train_patience`` … at the top level)."""
        d = dict(d)
        train = dict(d.pop("train", None) or {})
        for old, new in FLAT_TRAIN:
            if old in d:
                train[new] = d.pop(old)
        for k in RUN_LEVEL:
            train.pop(k, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EdgedistalError(f"unknown distill setting(s) {', '.join(unknown)}",
                                  "the run was made by another edgedistal version: distil it again")
        if d.get("milestones") is not None:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d, train=learner_train(**train))

    def validate(self) -> None:
        if self.mode not in MODES:
            raise EdgedistalError(f"unknown mode {self.mode!r}", "use --mode proxy, full or labelled")
        if self.materialise not in MATERIALISE:
            raise EdgedistalError(
                f"unknown materialise mode {self.materialise!r}", f"use one of {', '.join(MATERIALISE)}"
            )
        if self.rounds is not None and self.rounds < 1:
            raise EdgedistalError(f"rounds must be >= 1, got {self.rounds}", "pass --rounds 5 (or leave it out)")
        if self.rounds is not None and self.batch is not None:
            raise EdgedistalError("both rounds and batch given", "pass either --rounds N or --batch K")
        if sum(x is not None for x in (self.scores_dir, self.checkpoint, self.embedder)) > 1:
            raise EdgedistalError("more than one of --scores, --checkpoint, --embedder given",
                                  "pass one: --scores DIR, --checkpoint CKPT or --embedder EMBEDDER")
        if (self.scores_dir or self.checkpoint or self.embedder) is not None and self.mode != "proxy":
            raise EdgedistalError(f"--scores replaces the learner, so --mode {self.mode} cannot train one",
                                  "drop --mode (or drop --scores to train a learner)")

    def fingerprint_dict(self) -> dict:
        """The settings that change the selection (not device, threads or materialisation).

        The learner's recipe is written flat under its pre-nesting names, and other TrainConfig
        fields only when changed, so a run made before ``train`` existed still resumes."""
        d = asdict(self)
        train = d.pop("train")
        d.update({old: train[new] for old, new in FLAT_TRAIN})
        default = asdict(learner_train())
        flat = {new for _, new in FLAT_TRAIN} | set(RUN_LEVEL)
        d.update({f"train.{k}": v for k, v in train.items() if k not in flat and v != default[k]})
        for k in ("device", "materialise", "num_threads", "dynamics_dir", "scores_dir", "checkpoint", "embedder"):
            d.pop(k)  # scores_dir/checkpoint: paths; run_distill fingerprints the scores instead
        for k, default in (("checkpoints", 6), ("folds", 0)):  # added later: old runs still resume
            if d[k] == default:
                d.pop(k)
        if d["milestones"] is not None:
            d["milestones"] = list(d["milestones"])
        return d


def pool_hash(pool: Manifest) -> str:
    h = hashlib.sha1()
    for s in pool.df["sample_id"].astype(str):
        h.update(s.encode())
    return h.hexdigest()


def run_fingerprint(cfg: DistillConfig, pool_digest: str, mode: str, scores: str | None = None) -> str:
    """What a resumed run must match: the selection settings, the pool, the learner's mode and,
    for a learner on fixed scores, their digest (a rescored pool selects differently)."""
    fp: dict = {"cfg": cfg.fingerprint_dict(), "pool": pool_digest, "mode": mode}
    if scores is not None:
        fp["scores"] = scores
    return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()


def check_pool(pool: Manifest) -> None:
    """Refuse pools too small to train on or with one class: the run would crash or mean nothing."""
    from edgedistal.data.manifest import require_both_classes

    if len(pool) < MIN_POOL:
        raise EdgedistalError(f"the pool (train split) has {len(pool)} sample(s); distill needs at least {MIN_POOL}",
                              "add samples, or give more of the manifest to the train split")
    require_both_classes(pool, "the pool (train split)")


def train_config(cfg: DistillConfig) -> TrainConfig:
    """The learner's recipe with the run's seed, device and threads; MC dropout needs dropout in
    the head, so it gets 0.2 unless set."""
    drop = cfg.train.drop_rate if cfg.train.drop_rate or not cfg.mc_dropout else 0.2
    return replace(cfg.train, drop_rate=drop, seed=cfg.seed, device=cfg.device, num_threads=cfg.num_threads)


def auto_milestones(budget: float | int | str, n: int) -> tuple[float, ...]:
    """The default budget curve (``evaluate``'s budgets) up to ``budget`` on a pool of ``n``:
    ``distill --budget 0.1`` without ``--milestones`` snapshots 1, 2, 5 and 10 %; a 20 % milestone
    above its budget would be refused."""
    from edgedistal.pipeline.eval_config import DEFAULT_BUDGETS

    top = resolve_count(budget, n, "budget")
    return tuple(f for f in DEFAULT_BUDGETS if resolve_count(f, n, "milestone") <= top)


def milestone_counts(milestones: tuple[float, ...] | list[float], n: int, budget: int) -> dict[float, int]:
    """``{fraction: count}`` of each milestone; one above the budget is refused, not dropped
    silently (its snapshot would never be written)."""
    ms = {float(f): resolve_count(f, n, "milestone") for f in milestones}
    above = sorted(f for f, c in ms.items() if c > budget)
    if above:
        raise EdgedistalError(f"milestone(s) {', '.join(f'{f:g}' for f in above)} exceed the budget ({budget} samples)",
                              "pass milestones at or below --budget, or raise --budget")
    return ms


def selection_device(name: str):
    from edgedistal.models.predict import resolve_device

    return resolve_device(name)
