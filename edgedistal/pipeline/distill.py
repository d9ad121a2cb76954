"""One distillation run: manifest in, distilled manifest (+ milestones, logs, scores) out.

Selection draws only from the ``train`` split (the pool); ``val`` feeds the stop rule and the
round log; ``test`` is never read. Everything written is atomic and the loop resumes exactly
(see :mod:`edgedistal.acquire.loop`), so ``run_distill(..., resume=True)`` after a crash gives
the same ``distilled.parquet`` as an uninterrupted run. The settings live in
:mod:`edgedistal.pipeline.distill_config`, the output folder in :mod:`edgedistal.data.distilled`;
``--mode labelled`` runs :mod:`edgedistal.pipeline.distill_labelled` instead of the loop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from edgedistal.acquire import uncertainty as S
from edgedistal.acquire.learners import FixedLearner, HeadLearner, Learner, Scores, val_auc
from edgedistal.acquire.loop import (
    LoopState,
    PoolInfo,
    derive_seed,
    resolve_count,
    run_loop,
    schedule,
)
from edgedistal.acquire.registry import StrategySpec, get_strategy
from edgedistal.data.distilled import (
    DistillResult,
    materialise,
    milestone_path,
    write_run,
)
from edgedistal.data.manifest import Manifest
from edgedistal.data.split import ensure_split
from edgedistal.errors import EdgedistalError
from edgedistal.pipeline.distill_config import (
    MIN_SEED,
    DistillConfig,
    auto_milestones,
    check_pool,
    learner_train,
    milestone_counts,
    pool_hash,
    run_fingerprint,
    selection_device,
    train_config,
)
from edgedistal.pipeline.distill_labelled import run_labelled
from edgedistal.utils.progress import Bar

log = logging.getLogger(__name__)


def build_learner(cfg: DistillConfig, pool: Manifest, val: Manifest, workdir: Path, progress: bool) -> Learner:
    """The detector-backed learner for ``cfg.mode`` (images decoded once into the cache)."""
    from edgedistal.acquire.learners import FullLearner, ProxyLearner
    from edgedistal.data.images import load_images

    images = load_images(pool.paths, cfg.train.image_size, progress=progress)
    val_images = load_images(val.paths, cfg.train.image_size, progress=progress) if len(val) else None
    val_labels = val.labels if len(val) else None
    tcfg = train_config(cfg)
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
    with TorchBackend(model, "fp32", device=cfg.device, batch_size=256) as backend:
        score_manifest(rows, backend, dest, batch_size=256, progress=progress)
    return dest


def _check_scores_strategy(cfg: DistillConfig) -> None:
    """Precomputed scores hold probabilities and embeddings only: no MC-dropout passes (BALD),
    no training dynamics (the difficulty scores of --mode labelled)."""
    wants = {StrategySpec.parse(cfg.strategy).base, str(cfg.strategy_kw.get("score", ""))}
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
    spec = StrategySpec.parse(cfg.strategy)
    fix = ("use an embedding strategy (typiclust, probcover, kcenter, random; wrappers balanced+/groupcap+ "
           "with --label-aware), or score the pool with a detector (--checkpoint)")
    if spec.base not in EMBEDDING_STRATEGIES or spec.has("coldstart"):
        raise EdgedistalError(f"strategy {cfg.strategy!r} needs probabilities, which embedder scores do not have", fix)
    if not cfg.label_aware and (cfg.balanced or spec.has("balanced") or spec.has("paired")
                                or spec.base in ("mundig", "mundig_div")
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


def _picked_manifest(pool: Manifest, state: LoopState, count: int | None = None) -> Manifest:
    order = np.asarray(state.order, np.int64)[: count if count is not None else len(state.order)]
    round_of = np.concatenate([np.full(r["picked"], r["round"], np.int32) for r in state.rounds])
    df = pool.df.iloc[order].reset_index(drop=True).copy()
    df["round"] = round_of[: len(order)]
    df["rank"] = np.arange(len(order), dtype=np.int32)
    return Manifest(df)


def _pool_table(pool: Manifest, state: LoopState, scores: Scores) -> dict:
    """``pool_scores.parquet``'s columns: the last scoring of every pool row, its round and rank
    (-1: not picked) and why it was picked."""
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
    return table


def _reasons(state: LoopState, n: int) -> list[str]:
    """Why each row was picked: the strategy's own reason, else its round and strategy name."""
    out = [""] * n
    for rec, start in zip(state.rounds, np.cumsum([0] + [r["picked"] for r in state.rounds[:-1]]), strict=True):
        for i in state.order[int(start) : int(start) + rec["picked"]]:
            out[i] = state.reasons.get(str(i)) or f"round {rec['round']}: {rec['strategy']}"
    return out


@dataclass
class _Plan:
    """The run's sizes: budget, seed set, milestone counts and the cumulative round targets."""

    budget: int
    seed_size: int
    kept: dict[float, int]
    targets: list[int]


def _plan(cfg: DistillConfig, n: int, learner: Learner | None) -> _Plan:
    budget = resolve_count(cfg.budget, n, "budget")
    if budget < MIN_SEED:
        raise EdgedistalError(f"budget {cfg.budget!r} gives {budget} sample(s); the minimum is {MIN_SEED}",
                              f"pass --budget {MIN_SEED} or more (or a larger fraction)")
    seed_size = min(max(resolve_count(cfg.seed_size, n, "seed size"), MIN_SEED), budget)
    batch = resolve_count(cfg.batch, n, "batch") if cfg.batch is not None else None
    kept = milestone_counts(cfg.milestones, n, budget)
    if resolve_count(cfg.seed_size, n, "seed size") >= budget:  # no round would follow the seed set
        log.warning("the seed set (%s) fills the whole budget (%d): no active-learning round runs; the "
                    "subset is a %s sample, labelled so in config.json", cfg.seed_size, budget, cfg.seed_strategy)
    rounds = cfg.rounds
    if isinstance(learner, FixedLearner) and rounds is None and batch is None:
        rounds = 1  # the scores do not change between rounds: one selection after the seed set
    targets = schedule(n, seed_size, budget, batch=batch, rounds=rounds, milestones=list(kept.values()))
    return _Plan(budget, seed_size, kept, targets)


def _given_learner(cfg: DistillConfig, manifest: Manifest, pool: Manifest, val: Manifest, out: Path,
                   progress: bool, resume: bool) -> Learner | None:
    """The learner that needs no training: fixed scores (``--scores``, ``--checkpoint``,
    ``--embedder``) or none at all (:func:`model_free`); ``None``: train one."""
    if (cfg.scores_dir or cfg.checkpoint or cfg.embedder) is not None:
        _check_scores_strategy(cfg)
        if cfg.embedder:  # before scoring: refuse what cannot run on embeddings alone
            _check_embedder_strategy(cfg)
        scores_dir = cfg.scores_dir or _score_checkpoint(cfg, manifest, out, progress, resume)
        _check_embedder_strategy(cfg, scores_dir)
        return scores_learner(scores_dir, pool, val, set(manifest.df["sample_id"].astype(str)))
    if cfg.mode != "labelled" and model_free(cfg):
        return no_model(len(pool))  # balanced+random and kin: nothing to train, nothing to wait for
    return None


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
    if len(pool) == 0:
        raise EdgedistalError("the manifest has no train split to select from",
                              "split it (edgedistal ingest --split) or clear the split column")
    check_pool(pool)
    if cfg.milestones is None:  # the default curve up to the budget; none where the user fixed the rounds
        fixed = cfg.rounds is not None or cfg.batch is not None
        cfg = replace(cfg, milestones=() if fixed else auto_milestones(cfg.budget, len(pool)))
    if learner is None:
        learner = _given_learner(cfg, manifest, pool, val, out, progress, resume)
    if cfg.mode == "labelled" and learner is None:
        return run_labelled(manifest, cfg, out, resume=resume, progress=progress, on_round=on_round)
    plan = _plan(cfg, len(pool), learner)
    state, learner, mode, info = _select(cfg, pool, val, out, plan, learner, resume, progress, on_round)
    return _finish(cfg, manifest, pool, val, out, plan, state, learner, mode, info)


def _select(cfg: DistillConfig, pool: Manifest, val: Manifest, out: Path, plan: _Plan, learner: Learner | None,
            resume: bool, progress: bool, on_round: Callable[[dict], None] | None):
    """Run (or continue) the acquisition loop; milestone snapshots are written as they are reached."""
    state_path = out / "state.json"
    workdir = out / "learner"
    if not resume:
        state_path.unlink(missing_ok=True)
        if workdir.exists():
            shutil.rmtree(workdir)
    strategy = get_strategy(cfg.strategy, balanced=cfg.balanced, group_spread=cfg.group_cap, **dict(cfg.strategy_kw))
    wants_bald = StrategySpec.parse(cfg.strategy).base == "bald" or cfg.strategy_kw.get("score") == "bald"
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
    fingerprint = run_fingerprint(cfg, pool_hash(pool), mode,
                                  learner.digest if isinstance(learner, FixedLearner) else None)
    bar = Bar("distill", len(plan.targets), progress)
    looped = _PauseBar(learner, bar)  # training/scoring draw their own bars meanwhile

    def after(rec: dict, state: LoopState) -> None:
        got = len(state.order)
        for f, c in plan.kept.items():
            if c == got or (c < got and c <= plan.targets[0] and len(state.rounds) == 1):
                _picked_manifest(pool, state, c).save(milestone_path(out, f))
        bar.update(rec["round"] + 1, f"labelled {rec['labelled']}/{rec['target']}")
        if on_round:
            on_round(rec)

    try:
        state, _ = run_loop(
            looped, strategy, info, plan.targets, state_path,
            fingerprint=fingerprint, seed=cfg.seed, seed_strategy=cfg.seed_strategy,
            patience=cfg.patience, min_delta=cfg.min_delta,
            device=selection_device(cfg.device), resume=resume, on_round=after,
        )
    finally:
        bar.close()
    return state, learner, mode, info


def _finish(cfg: DistillConfig, manifest: Manifest, pool: Manifest, val: Manifest, out: Path, plan: _Plan,
            state: LoopState, learner: Learner, mode: str, info: PoolInfo) -> DistillResult:
    """Score the pool once more with every pick labelled, then write the outputs (config.json last)."""
    n = len(pool)
    labelled = np.zeros(n, bool)
    labelled[np.asarray(state.order, np.int64)] = True
    final = learner.update(labelled, len(state.rounds), derive_seed(cfg.seed, len(state.rounds)))
    final_auc = val_auc(final, info.val_labels)
    for f, c in plan.kept.items():  # milestones reached (also those written during the run)
        if c <= len(state.order):
            _picked_manifest(pool, state, c).save(milestone_path(out, f))
    dist = _picked_manifest(pool, state)
    rounds = pd.DataFrame(state.rounds)

    def summary(sub: Path | None) -> dict:
        return {
            "mode": mode,
            "config": cfg.to_dict(),
            "learner": learner.describe(),
            "pool": n,
            "val": len(val),
            "budget": plan.budget,
            "seed_size": plan.seed_size,
            "targets": plan.targets,
            "milestones": {f"{f:.3f}": c for f, c in plan.kept.items()},
            "milestones_ignored_above_budget": [],  # kept for readers of older runs (refused now)
            "active_learning_rounds": max(0, len(state.rounds) - 1),
            "selected_by": (f"seed set only ({cfg.seed_strategy}): it filled the budget"
                            if plan.seed_size >= plan.budget else cfg.strategy),
            "selected": len(state.order),
            "stop_reason": state.stop_reason,
            "final_val_auc": None if math.isnan(final_auc) else final_auc,
            "groups_covered": int(pd.Series(info.groups[labelled]).nunique()),
            "groups_in_pool": int(pd.Series(info.groups).nunique()),
            "subset": str(sub) if sub else None,
        }

    written = write_run(out, dist, rounds, _pool_table(pool, state, final), final.embeddings,
                        cfg.materialise, manifest.paths, summary)
    return DistillResult(dist, rounds, out, written)


#: Wrappers that read only labels (with --label-aware) or groups, never a model's output.
_LABEL_WRAPPERS = ("balanced", "groupspread", "groupcap", "paired")


def model_free(cfg: DistillConfig) -> bool:
    """Whether the selection reads no model output: ``random`` under label-reading wrappers
    (``balanced+random``: plain balanced sampling), a random seed set, no early stop on val.
    Such a run trains no proxy; its picks are the same as if it had trained one."""
    spec = StrategySpec.parse(cfg.strategy)
    wrapped = cfg.balanced or "real_fraction" in cfg.strategy_kw or spec.has("balanced") or spec.has("paired")
    return (spec.base == "random" and all(w in _LABEL_WRAPPERS for w in spec.wrappers)
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


__all__ = ["DistillConfig", "DistillResult", "run_distill", "learner_train", "materialise", "HeadLearner"]
