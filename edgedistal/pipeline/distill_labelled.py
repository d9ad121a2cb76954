"""Labelled distillation (``distill --mode labelled``): one proxy run over the whole labelled
pool records training dynamics, then a score-based strategy (ccs, easy2hard, d2, …) selects.

Why a mode of its own: DFDC / FF++ users have every label, so there is no oracle to query and
no reason to start from a weak seed model. Each milestone budget is its own selection (CCS's
hard cut and easy2hard's window depend on the budget), so milestone files are *not* prefixes
of one pick order; ``evaluate --distilled`` reads the milestone files, which are always written.
The dynamics are cached in ``OUT/learner`` (or reused from ``--dynamics DIR`` when their
settings match), so ``--resume`` and other strategies on the same pool skip the training.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from edgedistal.acquire import uncertainty as S
from edgedistal.acquire.dynamics import Dynamics, DynamicsConfig, compute_dynamics
from edgedistal.acquire.learners import Scores
from edgedistal.acquire.loop import PoolInfo, derive_seed, resolve_count, round_record
from edgedistal.acquire.registry import get_strategy
from edgedistal.acquire.state import SelectionState
from edgedistal.data.distilled import DistillResult, milestone_path, write_run
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.pipeline.distill_config import (
    DistillConfig,
    milestone_counts,
    pool_hash,
    run_fingerprint,
    selection_device,
)
from edgedistal.utils.io import read_json, write_json_atomic


def dynamics_config(cfg: DistillConfig) -> DynamicsConfig:
    """The proxy run of a :class:`~edgedistal.pipeline.distill_config.DistillConfig` (its learner's recipe)."""
    t = cfg.train
    return DynamicsConfig(backbone=t.backbone, epochs=t.epochs, steps=t.max_steps, checkpoints=cfg.checkpoints,
                          batch_size=t.batch_size, lr=t.lr, folds=cfg.folds, seed=cfg.seed,
                          device=cfg.device, amp=t.amp, num_threads=cfg.num_threads)


def _dynamics_key(dcfg: DynamicsConfig, image_size: int, pool_digest: str) -> str:
    d = asdict(dcfg)
    for k in ("device", "num_threads", "predict_batch"):
        d.pop(k)
    src = json.dumps({"dyn": d, "image_size": image_size, "pool": pool_digest}, sort_keys=True)
    return hashlib.sha1(src.encode()).hexdigest()


def pool_dynamics(cfg: DistillConfig, pool: Manifest, workdir: Path, pool_digest: str, progress: bool) -> Dynamics:
    """Cached dynamics of ``pool`` (``workdir``, then ``cfg.dynamics_dir``), else one proxy run."""
    dcfg = dynamics_config(cfg)
    key = _dynamics_key(dcfg, cfg.train.image_size, pool_digest)
    for folder in [workdir] + ([Path(cfg.dynamics_dir)] if cfg.dynamics_dir else []):
        dyn = Dynamics.load(folder)
        if dyn is not None and dyn.cost.get("key") == key:
            if Path(folder) != workdir:
                dyn.save(workdir)
            return dyn
    if cfg.dynamics_dir:
        raise EdgedistalError(f"{cfg.dynamics_dir}: no training dynamics for this pool and these proxy settings",
                              "pass the learner/ folder of a labelled run with the same --backbone, --image-size, "
                              "--epochs/--steps, --checkpoints, --folds and --seed, or drop --dynamics")
    from edgedistal.data.images import load_images

    images = load_images(pool.paths, cfg.train.image_size, progress=progress)
    dyn = compute_dynamics(images, pool.labels, pool.df["sample_id"].to_numpy(), dcfg,
                           groups=pool.df["group"].to_numpy(dtype=object))
    dyn.cost["key"] = key
    dyn.cost["image_size"] = cfg.train.image_size
    dyn.save(workdir)
    return dyn


def _selection(pool: Manifest, picks: np.ndarray, r: int, reasons: dict[int, str]) -> Manifest:
    df = pool.df.iloc[picks].reset_index(drop=True).copy()
    df["round"] = np.int32(r)
    df["rank"] = np.arange(len(picks), dtype=np.int32)
    df["reason"] = [reasons.get(int(i), "") for i in picks]
    return Manifest(df)


def run_labelled(
    manifest: Manifest, cfg: DistillConfig, out: Path, *, resume: bool = False, progress: bool = True,
    on_round: Callable[[dict], None] | None = None,
) -> DistillResult:
    """Select every milestone budget (and the final one) from ``manifest``'s train split."""
    pool, val = manifest.split("train"), manifest.split("val")
    n = len(pool)
    budget = resolve_count(cfg.budget, n, "budget")
    kept = milestone_counts(cfg.milestones, n, budget)
    targets = sorted(set(kept.values()) | {budget})
    digest = pool_hash(pool)
    fingerprint = run_fingerprint(cfg, digest, "labelled")
    state_path, workdir = out / "state.json", out / "learner"
    if resume and state_path.exists() and read_json(state_path).get("fingerprint") != fingerprint:
        raise EdgedistalError(f"{state_path}: saved run used other settings or another pool",
                              "resume with the same manifest and options, or drop --resume to start over")
    if not resume:
        state_path.unlink(missing_ok=True)
        if workdir.exists():
            shutil.rmtree(workdir)
    write_json_atomic(state_path, {"fingerprint": fingerprint, "mode": "labelled", "finished": False})

    dyn = pool_dynamics(cfg, pool, workdir, digest, progress)
    if list(dyn.table["sample_id"].astype(str)) != list(pool.df["sample_id"].astype(str)):
        raise EdgedistalError(f"{workdir}: cached dynamics are for other samples", "run again without --resume")
    picks_at, rounds, select_s = _select_budgets(cfg, pool, dyn, targets, kept, out, on_round)
    res = _finish(cfg, manifest, pool, val, out, dyn, picks_at, rounds, kept, budget, targets, select_s)
    write_json_atomic(state_path, {"fingerprint": fingerprint, "mode": "labelled", "finished": True})
    return res


def _select_budgets(cfg: DistillConfig, pool: Manifest, dyn: Dynamics, targets: list[int], kept: dict[float, int],
                    out: Path, on_round: Callable[[dict], None] | None):
    """One selection per target count (each its own ``round``); milestone snapshots as they come.
    Returns ``{count: (picks, reasons)}``, the round log and the selection's seconds."""
    n = len(pool)
    strategy = get_strategy(cfg.strategy, balanced=cfg.balanced, group_spread=cfg.group_cap, **dict(cfg.strategy_kw))
    info = PoolInfo(labels=pool.labels, groups=pool.df["group"].to_numpy(dtype=object),
                    methods=pool.df["method"].to_numpy(dtype=object).astype(str))
    probs = dyn.table["prob"].to_numpy(np.float32, copy=True)  # parquet arrays are read-only
    scores = Scores(probs, dyn.embeddings)
    device = selection_device(cfg.device)
    picks_at: dict[int, tuple[np.ndarray, dict[int, str]]] = {}
    rounds: list[dict] = []
    select_s = 0.0
    for r, count in enumerate(targets):
        t0 = time.perf_counter()
        reasons: dict[int, str] = {}
        state = SelectionState.build(
            dyn.embeddings, probs, np.zeros(n, bool), seed=derive_seed(cfg.seed, r), device=device,
            labels=pool.labels, groups=info.groups, videos=pool.df["video"].to_numpy(dtype=object),
            pool_labels=pool.labels, scores=dyn.scores(), reasons=reasons,
        )
        picks = np.asarray(strategy.select(state, count), np.int64)
        if len(picks) != len(set(picks.tolist())):
            raise RuntimeError(f"strategy {strategy.name} returned duplicate indices")
        dt = time.perf_counter() - t0
        select_s += dt
        picks_at[count] = (picks, reasons)
        mask = np.zeros(n, bool)
        mask[picks] = True
        rec = round_record(r, picks, mask, info, scores, strategy.name, count, math.nan, dt)
        rounds.append(rec)
        for f, c in kept.items():
            if c == count:
                _selection(pool, picks, r, reasons).save(milestone_path(out, f))
        if on_round:
            on_round(rec)
    return picks_at, rounds, select_s


def _finish(cfg: DistillConfig, manifest: Manifest, pool: Manifest, val: Manifest, out: Path, dyn: Dynamics,
            picks_at: dict, rounds: list[dict], kept: dict[float, int], budget: int, targets: list[int],
            select_s: float) -> DistillResult:
    """The final budget's picks, then the outputs every run writes (config.json last)."""
    n = len(pool)
    final, final_reasons = picks_at[budget]
    dist = _selection(pool, final, len(targets) - 1, final_reasons)
    table = pd.DataFrame(rounds)
    dyn_cost = {k: v for k, v in dyn.cost.items() if k not in ("config", "key")}
    picked = np.zeros(n, bool)
    picked[final] = True
    groups = pool.df["group"].to_numpy(dtype=object)

    def summary(sub: Path | None) -> dict:
        return {
            "mode": "labelled",
            "config": cfg.to_dict(),
            "learner": {"mode": "labelled", "proxy": dyn.cost.get("config"), "image_size": dyn.cost.get("image_size")},
            "pool": n,
            "val": len(val),
            "budget": budget,
            "seed_size": 0,
            "targets": targets,
            "milestones": {f"{f:.3f}": c for f, c in kept.items()},
            "milestones_ignored_above_budget": [],  # refused instead (milestone_counts)
            "nested_milestones": False,
            "selected": len(final),
            "stop_reason": "budget",
            "final_val_auc": None,
            "groups_covered": int(pd.Series(groups[picked]).nunique()),
            "groups_in_pool": int(pd.Series(groups).nunique()),
            "subset": str(sub) if sub else None,
            "cost": {**dyn_cost, "select_s": round(select_s, 3),
                     "proxy_epochs": round(dyn.cost.get("images_trained", 0) / max(n, 1), 3)},
        }

    written = write_run(out, dist, table, _pool_table(pool, dyn, picks_at, kept, budget), dyn.embeddings,
                        cfg.materialise, manifest.paths, summary)
    return DistillResult(dist, table, out, written)


def _pool_table(pool: Manifest, dyn: Dynamics, picks_at: dict, kept: dict, budget: int) -> dict:
    """``pool_scores.parquet``'s columns: every sample's dynamics, where it landed and why (final budget)."""
    n = len(pool)
    final, reasons = picks_at[budget]
    rank = np.full(n, -1, np.int32)
    rank[final] = np.arange(len(final), dtype=np.int32)
    prob = dyn.table["prob"].to_numpy(np.float32, copy=True)
    table = {
        "sample_id": pool.df["sample_id"].to_numpy(), "label": pool.labels,
        "group": pool.df["group"].to_numpy(), "video": pool.df["video"].to_numpy(),
        "method": pool.df["method"].to_numpy(), "prob": prob, **S.uncertainty_table(prob),
        **{k: v for k, v in dyn.scores().items() if k != "prob"},
        "picked_round": np.where(rank >= 0, len(picks_at) - 1, -1).astype(np.int32),
        "rank": rank,
        "reason": [reasons.get(i, "") for i in range(n)],
    }
    for f, c in sorted(kept.items()):
        m = np.zeros(n, bool)
        m[picks_at[c][0]] = True
        table[f"picked_{f:.3f}"] = m
    return table


__all__ = ["run_labelled", "pool_dynamics", "dynamics_config"]
