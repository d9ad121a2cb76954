"""One distillation run: manifest in, distilled manifest (+ milestones, logs, scores) out.

Selection draws only from the ``train`` split (the pool); ``val`` feeds the stop rule and the
round log; ``test`` is never read. Everything written is atomic and the loop resumes exactly
(see :mod:`edgedistal.acquire.loop`), so ``run_distill(..., resume=True)`` after a crash gives
the same ``distilled.parquet`` as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgedistal.acquire import scores as S
from edgedistal.acquire.learners import FixedLearner, HeadLearner, Learner, Scores, val_auc
from edgedistal.acquire.loop import (
    LoopState,
    PoolInfo,
    derive_seed,
    resolve_count,
    run_loop,
    schedule,
)
from edgedistal.acquire.registry import get_strategy
from edgedistal.data.manifest import Manifest
from edgedistal.data.split import ensure_split
from edgedistal.errors import EdgedistalError
from edgedistal.models.train import TrainConfig
from edgedistal.utils import safepath
from edgedistal.utils.io import atomic_path, write_json_atomic
from edgedistal.utils.progress import Bar

MODES = ("proxy", "full", "labelled")
#: Smallest pool worth distilling, and the smallest labelled set a detector can train on
#: (batch norm needs two samples per batch).
MIN_POOL = 8
MIN_SEED = 2
log = logging.getLogger(__name__)
MATERIALISE = ("none", "symlink", "hardlink", "copy")


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
    milestones: tuple[float, ...] = ()
    strategy: str = "hybrid"
    strategy_kw: dict = field(default_factory=dict)  # e.g. {"beta": 4, "score": "margin"}
    balanced: bool = False
    #: The dataset being distilled is labelled, so label-aware wrappers (balanced, paired) may read
    #: every pool row's label; False simulates active learning (labels only for picked rows).
    label_aware: bool = True
    group_cap: int = 0  # > 0: at most this many picks per group per round
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
        if "milestones" in d:
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
        d["milestones"] = list(d["milestones"])
        return d


@dataclass
class DistillResult:
    manifest: Manifest  # the distilled rows, pick order, with round and rank columns
    rounds: pd.DataFrame
    out_dir: Path
    config: dict = field(default_factory=dict)


def _pool_hash(pool: Manifest) -> str:
    h = hashlib.sha1()
    for s in pool.df["sample_id"].astype(str):
        h.update(s.encode())
    return h.hexdigest()


def check_pool(pool: Manifest) -> None:
    """Refuse pools too small to train on or with one class: the run would crash or mean nothing."""
    from edgedistal.data.manifest import require_both_classes

    if len(pool) < MIN_POOL:
        raise EdgedistalError(f"the pool (train split) has {len(pool)} sample(s); distill needs at least {MIN_POOL}",
                              "add samples, or give more of the manifest to the train split")
    require_both_classes(pool, "the pool (train split)")


def _train_config(cfg: DistillConfig) -> TrainConfig:
    """The learner's recipe with the run's seed, device and threads; MC dropout needs dropout in
    the head, so it gets 0.2 unless set."""
    drop = cfg.train.drop_rate if cfg.train.drop_rate or not cfg.mc_dropout else 0.2
    return replace(cfg.train, drop_rate=drop, seed=cfg.seed, device=cfg.device, num_threads=cfg.num_threads)


def build_learner(cfg: DistillConfig, pool: Manifest, val: Manifest, workdir: Path, progress: bool) -> Learner:
    """The detector-backed learner for ``cfg.mode`` (images decoded once into the cache)."""
    from edgedistal.acquire.learners import FullLearner, ProxyLearner
    from edgedistal.data.images import load_images

    images = load_images(pool.paths, cfg.train.image_size, progress=progress)
    val_images = load_images(val.paths, cfg.train.image_size, progress=progress) if len(val) else None
    val_labels = val.labels if len(val) else None
    tcfg = _train_config(cfg)
    if cfg.mode == "full":
        return FullLearner(images, pool.labels, val_images, val_labels, tcfg, workdir,
                           mc_dropout=cfg.mc_dropout, progress=progress)
    return ProxyLearner(images, pool.labels, val_images, val_labels, tcfg, workdir,
                        refresh_every=cfg.refresh_every, mc_dropout=cfg.mc_dropout,
                        head_c=cfg.head_c, progress=progress)


def scores_learner(scores_dir: str | os.PathLike[str], pool: Manifest, val: Manifest,
                   manifest_ids: set[str] | None = None) -> FixedLearner:
    """A learner over `edgedistal score` output, checked against this manifest's train pool.

    The scores may cover more rows than the pool (the whole manifest: val rows then give the
    val AUC); every pool row must be there, and none may be outside ``manifest_ids``.
    """
    from edgedistal.acquire.scorer import read_scores

    d = Path(scores_dir)
    table, emb = read_scores(d)
    fix = f"score this manifest's pool: edgedistal score --manifest MANIFEST --split train -o {d}"
    where = {sid: i for i, sid in enumerate(table["sample_id"].astype(str))}
    pool_ids = pool.df["sample_id"].astype(str)
    missing = [sid for sid in pool_ids if sid not in where]
    if missing:
        raise EdgedistalError(f"{d}: {len(table):,} scored rows miss {len(missing):,} of the pool's {len(pool):,} "
                              f"train samples (e.g. {missing[0]})", fix)
    if manifest_ids is not None:
        foreign = [sid for sid in where if sid not in manifest_ids]
        if foreign:  # val/test rows of this manifest are fine; a row of no split is another's
            raise EdgedistalError(f"{d}: {len(foreign):,} scored rows are not in this manifest "
                                  f"(e.g. {foreign[0]}): scores of another manifest", fix)
    rows = np.fromiter((where[sid] for sid in pool_ids), np.int64, len(pool))
    if "label" in table and not np.array_equal(table["label"].to_numpy()[rows].astype(np.int64), pool.labels):
        raise EdgedistalError(f"{d}: the scored labels differ from the manifest's (scores of another version?)", fix)
    val_probs = None
    val_ids = val.df["sample_id"].astype(str)
    has_probs = not table["prob"].isna().all()  # an embedder's scores have none
    if len(val) and has_probs and all(sid in where for sid in val_ids):
        val_probs = table["prob"].to_numpy(np.float32)[[where[sid] for sid in val_ids]]
    probs = table["prob"].to_numpy(np.float32)[rows]
    embeddings = np.ascontiguousarray(emb[rows], np.float32)
    if not np.isfinite(embeddings).all():
        raise EdgedistalError(f"{d}: non-finite embeddings", fix)
    h = hashlib.sha1(probs.tobytes())
    h.update(embeddings.tobytes())
    return FixedLearner(Scores(probs, embeddings, None, val_probs), source=str(d), digest=h.hexdigest())


def _score_checkpoint(cfg: DistillConfig, manifest: Manifest, out: Path, progress: bool, resume: bool) -> Path:
    """Score the train + val rows with ``cfg.checkpoint`` (or ``cfg.embedder``) through the torch
    backend and the `score` command's scorer into ``out/scores`` (reused when already there)."""
    from edgedistal.acquire.scorer import SUMMARY_FILE, score_manifest
    from edgedistal.models.embedder import load_embedder
    from edgedistal.models.registry import load_checkpoint
    from edgedistal.runtime.torch_backend import TorchBackend

    dest = out / "scores"
    if resume and (dest / SUMMARY_FILE).exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    model, _ = load_embedder(cfg.embedder) if cfg.embedder else load_checkpoint(cfg.checkpoint)
    rows = Manifest(manifest.df[manifest.df["split"].isin(["train", "val"])].reset_index(drop=True))
    backend = TorchBackend(model, "fp32", device=cfg.device, batch_size=256)
    try:
        score_manifest(rows, backend, dest, batch_size=256, progress=progress)
    finally:
        backend.close()
    return dest


def _check_scores_strategy(cfg: DistillConfig) -> None:
    """Precomputed scores hold probabilities and embeddings only: no MC-dropout passes (BALD),
    no training dynamics (the difficulty scores of --mode labelled)."""
    wants = {cfg.strategy.split("+")[-1], str(cfg.strategy_kw.get("score", ""))}
    if "bald" in wants:
        raise EdgedistalError("BALD needs MC-dropout passes, which `edgedistal score` output does not hold",
                              "pick --score entropy/margin, or drop --scores and add --mc-dropout 10")
    lacking = {str(cfg.strategy_kw.get("score", ""))} - set(S.SCORES) - {""}
    if lacking:
        raise EdgedistalError(f"the {lacking.pop()!r} score needs training dynamics, which the scores lack",
                              "use --mode labelled without --scores, or --score entropy")


#: What selects on an embedder's scores (embeddings, no probabilities): the embedding strategies,
#: and the wrappers and Lightly's engine (the peer arm) when they read the dataset's labels.
EMBEDDING_STRATEGIES = ("random", "kcenter", "coreset", "typiclust", "probcover", "mundig", "mundig_div")


def _check_embedder_strategy(cfg: DistillConfig, scores_dir: str | os.PathLike[str] | None = None) -> None:
    """Refuse uncertainty-based selection on embedder-only scores (NaN probabilities), one line;
    without ``scores_dir`` the scores are known to be an embedder's (``--embedder``)."""
    import pandas as pd

    from edgedistal.acquire.scorer import SCORES_FILE, embedder_only

    if scores_dir is not None:
        path = Path(scores_dir) / SCORES_FILE
        if not path.exists() or not embedder_only(pd.read_parquet(path, columns=["prob"])):
            return
    parts = cfg.strategy.lower().replace("-", "_").split("+")
    fix = ("use an embedding strategy (typiclust, probcover, kcenter, random; wrappers balanced+/groupcap+ "
           "with --label-aware), or score the pool with a detector (--checkpoint)")
    if parts[-1] not in EMBEDDING_STRATEGIES or "coldstart" in parts[:-1]:
        raise EdgedistalError(f"strategy {cfg.strategy!r} needs probabilities, which embedder scores do not have", fix)
    if not cfg.label_aware and (cfg.balanced or any(w in parts for w in ("balanced", "paired", "mundig", "mundig_div"))
                                or "real_fraction" in cfg.strategy_kw):
        raise EdgedistalError("--no-label-aware balancing predicts classes from probabilities, which embedder "
                              "scores do not have", fix)


def _cold_features(strategy, learner: Learner) -> None:
    """A coldstart+ chain covers frequency features of the pool's images (the learner's, when it
    holds them) or, for learners on fixed embeddings, their label-free seed features."""
    from edgedistal.acquire.coldstart import attach_features, needs_features

    if not needs_features(strategy):
        return
    images = getattr(learner, "images", None)
    if images is not None:
        from edgedistal.acquire.frequency import frequency_features

        attach_features(strategy, frequency_features(images, dct=True))
    else:
        attach_features(strategy, np.asarray(learner.seed_embeddings(), np.float32))


def _selection_device(name: str):
    from edgedistal.models.predict import resolve_device

    return resolve_device(name)


def _picked_manifest(pool: Manifest, state: LoopState, count: int | None = None) -> Manifest:
    order = np.asarray(state.order, np.int64)[: count if count is not None else len(state.order)]
    round_of = np.concatenate([np.full(r["picked"], r["round"], np.int32) for r in state.rounds])
    df = pool.df.iloc[order].reset_index(drop=True).copy()
    df["round"] = round_of[: len(order)]
    df["rank"] = np.arange(len(order), dtype=np.int32)
    return Manifest(df)


def _milestone_path(out_dir: Path, frac: float) -> Path:
    return out_dir / "milestones" / f"budget_{frac:.3f}.parquet"


def _write_pool_scores(out_dir: Path, pool: Manifest, state: LoopState, scores: Scores) -> None:
    with atomic_path(out_dir / "embeddings.npy") as tmp, open(tmp, "wb") as fh:  # a full disk names the file
        np.save(fh, np.asarray(scores.embeddings, np.float32))
    n = len(pool)
    picked_round = np.full(n, -1, np.int32)
    rank = np.full(n, -1, np.int32)
    order = np.asarray(state.order, np.int64)
    pm = _picked_manifest(pool, state)
    picked_round[order] = pm.df["round"].to_numpy()
    rank[order] = np.arange(len(order), dtype=np.int32)
    table = {
        "sample_id": pool.df["sample_id"].to_numpy(),
        "label": pool.labels,
        "group": pool.df["group"].to_numpy(),
        "video": pool.df["video"].to_numpy(),
        "method": pool.df["method"].to_numpy(),
        "prob": np.asarray(scores.probs, np.float32),
        **S.uncertainty_table(np.asarray(scores.probs, np.float32)),
        "picked_round": picked_round,
        "rank": rank,
        "reason": _reasons(state, n),
    }
    if scores.mc_probs is not None:
        table["bald"] = S.bald(scores.mc_probs).numpy().astype(np.float32)
    with atomic_path(out_dir / "pool_scores.parquet") as tmp:
        pd.DataFrame(table).to_parquet(tmp, index=False)


def _reasons(state: LoopState, n: int) -> list[str]:
    """Why each row was picked: the strategy's own reason, else its round and strategy name."""
    out = [""] * n
    for rec, start in zip(state.rounds, np.cumsum([0] + [r["picked"] for r in state.rounds[:-1]]), strict=True):
        for i in state.order[int(start) : int(start) + rec["picked"]]:
            out[i] = state.reasons.get(str(i)) or f"round {rec['round']}: {rec['strategy']}"
    return out


def milestone_counts(milestones: tuple[float, ...] | list[float], n: int, budget: int) -> dict[float, int]:
    """``{fraction: count}`` of each milestone; one above the budget is refused, not dropped
    silently (its snapshot would never be written)."""
    ms = {float(f): resolve_count(f, n, "milestone") for f in milestones}
    above = sorted(f for f, c in ms.items() if c > budget)
    if above:
        raise EdgedistalError(f"milestone(s) {', '.join(f'{f:g}' for f in above)} exceed the budget ({budget} samples)",
                              "pass milestones at or below --budget, or raise --budget")
    return ms


def materialise(dist: Manifest, out_dir: Path, how: str, inputs: list[str] | None = None) -> Path | None:
    """Recreate the picked files under ``out_dir/subset`` in the source layout (relative to the
    pool's common folder) and write ``subset/manifest.parquet`` pointing at them.

    Every destination is checked before the first write (:func:`~edgedistal.utils.safepath.plan_writes`):
    it must lie under ``out_dir`` and must not be one of the picked files or of ``inputs`` (the
    whole pool), so an ``--out`` that holds the dataset can never replace an original.
    """
    if how == "none" or len(dist) == 0:
        return None
    paths = [safepath.normal(p) for p in dist.paths]
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    dst_root = out_dir / "subset"
    dsts = safepath.plan_writes([dst_root / src.relative_to(root) for src in paths], out_dir,
                                [*paths, *(inputs or [])])
    new_paths = []
    for src, dst in zip(paths, dsts, strict=True):
        dst.parent.mkdir(parents=True, exist_ok=True)
        safepath.require_under(dst, out_dir)  # the folder just made may not be a symlink out
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        try:
            if how == "symlink":
                dst.symlink_to(src.resolve())
            elif how == "hardlink":
                os.link(src, dst)
            else:
                shutil.copy2(src, dst)
        except OSError as exc:
            hint = ("hard links need the same filesystem; try --materialise symlink or copy" if how == "hardlink"
                    else f"check {src} is readable and {dst.parent} writable")
            raise EdgedistalError(f"{dst}: cannot {how} from {src} ({exc.strerror or exc})", hint) from exc
        new_paths.append(str(dst))
    Manifest(dist.df.assign(path=new_paths)).save(dst_root / "manifest.parquet")
    return dst_root


def clear_subset(out_dir: Path) -> None:
    """Remove an earlier run's ``subset/`` (``--overwrite``): only the files its own
    ``subset/manifest.parquet`` lists under ``out_dir/subset``, then the folders left empty.
    Anything else there (e.g. a dataset the user keeps in that folder) stays."""
    sub = out_dir / "subset"
    listing = sub / "manifest.parquet"
    if not listing.is_file():
        return
    try:
        ours = Manifest.load(listing).paths
    except EdgedistalError:
        ours = []
    for p in ours:
        if safepath.is_under(p, sub) and (os.path.islink(p) or os.path.isfile(p)):
            os.unlink(p)
    listing.unlink()
    for folder in sorted((d for d in sub.rglob("*") if d.is_dir() and not d.is_symlink()), key=lambda d: -len(d.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty ones go
    with contextlib.suppress(OSError):
        sub.rmdir()


def run_distill(
    manifest: Manifest,
    cfg: DistillConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    learner: Learner | None = None,
    on_round: Callable[[dict], None] | None = None,
) -> DistillResult:
    """Select a distilled subset of ``manifest``'s train split and write it under ``out_dir``.

    ``learner`` replaces the detector-backed learner (tests and precomputed embeddings pass a
    :class:`HeadLearner`); ``on_round(record)`` sees each round's log row as it is written.
    """
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ensure_split(manifest, seed=cfg.split_seed)
    pool = manifest.split("train")
    val = manifest.split("val")
    n = len(pool)
    if n == 0:
        raise EdgedistalError("the manifest has no train split to select from",
                              "split it (edgedistal ingest --split) or clear the split column")
    check_pool(pool)
    if learner is None and (cfg.scores_dir or cfg.checkpoint or cfg.embedder) is not None:
        _check_scores_strategy(cfg)
        if cfg.embedder:  # before scoring: refuse what cannot run on embeddings alone
            _check_embedder_strategy(cfg)
        scores_dir = cfg.scores_dir or _score_checkpoint(cfg, manifest, out, progress, resume)
        _check_embedder_strategy(cfg, scores_dir)
        learner = scores_learner(scores_dir, pool, val, set(manifest.df["sample_id"].astype(str)))
    if learner is None and cfg.mode != "labelled" and model_free(cfg):
        learner = no_model(n)  # balanced+random and kin: nothing to train, nothing to wait for
    if cfg.mode == "labelled" and learner is None:
        from edgedistal.pipeline.distill_labelled import run_labelled

        return run_labelled(manifest, cfg, out, resume=resume, progress=progress, on_round=on_round)
    budget = resolve_count(cfg.budget, n, "budget")
    if budget < MIN_SEED:
        raise EdgedistalError(f"budget {cfg.budget!r} gives {budget} sample(s); the minimum is {MIN_SEED}",
                              f"pass --budget {MIN_SEED} or more (or a larger fraction)")
    seed_size = min(max(resolve_count(cfg.seed_size, n, "seed size"), MIN_SEED), budget)
    batch = resolve_count(cfg.batch, n, "batch") if cfg.batch is not None else None
    kept = milestone_counts(cfg.milestones, n, budget)
    dropped: list[float] = []  # kept in config.json's keys for readers of older runs
    if resolve_count(cfg.seed_size, n, "seed size") >= budget:  # no round would follow the seed set
        log.warning("the seed set (%s) fills the whole budget (%d): no active-learning round runs; the "
                    "subset is a %s sample, labelled so in config.json", cfg.seed_size, budget, cfg.seed_strategy)
    rounds = cfg.rounds
    if isinstance(learner, FixedLearner) and rounds is None and batch is None:
        rounds = 1  # the scores do not change between rounds: one selection after the seed set
    targets = schedule(n, seed_size, budget, batch=batch, rounds=rounds, milestones=list(kept.values()))

    state_path = out / "state.json"
    workdir = out / "learner"
    if not resume:
        state_path.unlink(missing_ok=True)
        if workdir.exists():
            shutil.rmtree(workdir)
    strategy = get_strategy(cfg.strategy, balanced=cfg.balanced, group_cap=cfg.group_cap, **dict(cfg.strategy_kw))
    wants_bald = cfg.strategy.split("+")[-1] == "bald" or cfg.strategy_kw.get("score") == "bald"
    if wants_bald and cfg.mc_dropout <= 0 and learner is None:
        raise EdgedistalError("the BALD score needs MC-dropout samples", "add --mc-dropout 10")
    mode = cfg.mode
    if learner is None:
        learner = build_learner(cfg, pool, val, workdir, progress)
    else:
        mode = getattr(learner, "mode", "custom")
    _cold_features(strategy, learner)
    info = PoolInfo(
        labels=pool.labels,
        groups=pool.df["group"].to_numpy(dtype=object),
        methods=pool.df["method"].to_numpy(dtype=object).astype(str),
        val_labels=val.labels if len(val) else None,
        pool_labels=pool.labels if cfg.label_aware else None,
        videos=pool.df["video"].to_numpy(dtype=object),
    )
    fp: dict = {"cfg": cfg.fingerprint_dict(), "pool": _pool_hash(pool), "mode": mode}
    if isinstance(learner, FixedLearner):
        fp["scores"] = learner.digest  # rescored pool: different selection
    fp_src = json.dumps(fp, sort_keys=True)
    fingerprint = hashlib.sha1(fp_src.encode()).hexdigest()

    bar = Bar("distill", len(targets), progress)
    looped = _PauseBar(learner, bar)  # training/scoring draw their own bars meanwhile

    def after(rec: dict, state: LoopState) -> None:
        got = len(state.order)
        for f, c in kept.items():
            if c == got or (c < got and c <= targets[0] and len(state.rounds) == 1):
                _picked_manifest(pool, state, c).save(_milestone_path(out, f))
        bar.update(rec["round"] + 1, f"labelled {rec['labelled']}/{rec['target']}")
        if on_round:
            on_round(rec)

    try:
        state, _ = run_loop(
            looped, strategy, info, targets, state_path,
            fingerprint=fingerprint, seed=cfg.seed, seed_strategy=cfg.seed_strategy,
            patience=cfg.patience, min_delta=cfg.min_delta,
            device=_selection_device(cfg.device), resume=resume, on_round=after,
        )
    finally:
        bar.close()

    labelled = np.zeros(n, bool)
    labelled[np.asarray(state.order, np.int64)] = True
    final = learner.update(labelled, len(state.rounds), derive_seed(cfg.seed, len(state.rounds)))
    final_auc = val_auc(final, info.val_labels)

    dist = _picked_manifest(pool, state)
    dist.save(out / "distilled.parquet")
    dist.save(out / "distilled.csv")
    for f, c in kept.items():  # milestones reached (also those written during the run)
        if c <= len(state.order):
            _picked_manifest(pool, state, c).save(_milestone_path(out, f))
    rounds = pd.DataFrame(state.rounds)
    with atomic_path(out / "rounds.parquet") as tmp:
        rounds.to_parquet(tmp, index=False)
    with atomic_path(out / "rounds.csv") as tmp:
        rounds.to_csv(tmp, index=False)
    _write_pool_scores(out, pool, state, final)
    sub = materialise(dist, out, cfg.materialise, manifest.paths)
    summary = {
        "mode": mode,
        "config": cfg.to_dict(),
        "learner": learner.describe(),
        "pool": n,
        "val": len(val),
        "budget": budget,
        "seed_size": seed_size,
        "targets": targets,
        "milestones": {f"{f:.3f}": c for f, c in kept.items()},
        "milestones_ignored_above_budget": dropped,
        "active_learning_rounds": max(0, len(state.rounds) - 1),
        "selected_by": (f"seed set only ({cfg.seed_strategy}): it filled the budget" if seed_size >= budget
                        else cfg.strategy),
        "selected": len(state.order),
        "stop_reason": state.stop_reason,
        "final_val_auc": None if math.isnan(final_auc) else final_auc,
        "groups_covered": int(pd.Series(info.groups[labelled]).nunique()),
        "groups_in_pool": int(pd.Series(info.groups).nunique()),
        "subset": str(sub) if sub else None,
    }
    write_json_atomic(out / "config.json", summary)
    return DistillResult(dist, rounds, out, summary)


#: Wrappers that read only labels (with --label-aware) or groups, never a model's output.
_LABEL_WRAPPERS = ("balanced", "groupspread", "groupcap", "paired")


def model_free(cfg: DistillConfig) -> bool:
    """Whether the selection reads no model output: ``random`` under label-reading wrappers
    (``balanced+random``: plain balanced sampling), a random seed set, no early stop on val.
    Such a run trains no proxy; its picks are the same as if it had trained one."""
    parts = cfg.strategy.split("+")
    wrapped = cfg.balanced or "real_fraction" in cfg.strategy_kw or any(p in ("balanced", "paired") for p in parts)
    return (parts[-1] == "random" and all(p in _LABEL_WRAPPERS for p in parts[:-1])
            and (cfg.label_aware or not wrapped) and cfg.seed_strategy == "random"
            and cfg.patience == 0 and cfg.mc_dropout == 0)


class _NoModel(FixedLearner):
    mode = "none"


def no_model(n: int) -> FixedLearner:
    """A learner that trains nothing (p = 0.5, empty embeddings) for :func:`model_free` runs."""
    return _NoModel(Scores(np.full(n, 0.5, np.float32), np.zeros((n, 1), np.float32)),
                    source="none: the strategy reads labels only", digest="no-model")


class _PauseBar:
    """Learner wrapper that hides the round bar during ``update``: rich allows one live display,
    and training and scoring show their own."""

    def __init__(self, learner: Learner, bar: Bar):
        self.learner, self.bar = learner, bar
        self.mode = getattr(learner, "mode", "custom")

    def seed_embeddings(self) -> np.ndarray:
        return self.learner.seed_embeddings()

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        self.bar.pause()
        try:
            return self.learner.update(labelled, round_idx, seed)
        finally:
            self.bar.resume()

    def describe(self) -> dict:
        return self.learner.describe()


__all__ = ["DistillConfig", "DistillResult", "run_distill", "materialise", "clear_subset", "HeadLearner"]
