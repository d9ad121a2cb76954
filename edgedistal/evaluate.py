"""Distilled vs random vs full: does a distilled subset keep what the full pool teaches?

For each budget and seed, the same training recipe runs on (a) the distilled subset at that
budget, (b) a seeded random subset of the same size from the same pool, and once per seed on
(c) the full pool; every model is tested on the same held-out test groups. One protocol holds
for every arm (recorded in ``eval_config.json`` and each cell):

* ``steps``      – a fixed number of optimiser steps, no validation, final weights (default:
  equal compute, so the comparison isolates *which* samples were trained on);
* ``epochs``     – a fixed number of epochs (steps grow with the set: shows training time saved);
* ``early_stop`` – a validation split carved *by group* from the arm's own training set, best
  val-AUC weights restored, ``max_steps``/``epochs`` as the cap. The test split is never used
  for any decision.

Each (method, budget, seed) cell is written atomically to ``cells/`` when done and skipped on a
re-run, so an interrupted evaluation resumes. Images are loaded once (uint8 cache) and every
subset is an index into that array.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import read_json, write_json_atomic

PROTOCOLS = ("steps", "epochs", "early_stop")
METHODS = ("distilled", "random", "full")
#: Test metrics kept per cell (frame and video level), as ``<level>_<name>``.
METRIC_NAMES = ("auc", "ap", "eer", "balanced_acc", "acc", "log_loss")


@dataclass
class EvalConfig:
    """How the comparison is run; saved next to the results so a report can state it."""

    budgets: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    seeds: int = 3
    protocol: str = "steps"
    #: ``samples``: uniform over pool samples (the usual active-learning baseline);
    #: ``groups``: whole identity groups in random order (at most one group cut to hit the size).
    random_mode: str = "samples"
    val_fraction: float = 0.15  # early_stop only: share of the arm's rows (by group) held out
    include_full: bool = True
    seed_offset: int = 0  # training seed = seed_offset + seed index
    notes: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise EdgedistalError(f"unknown protocol {self.protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
        if self.random_mode not in ("samples", "groups"):
            raise EdgedistalError(f"unknown random mode {self.random_mode!r}", "use samples or groups")
        if not self.budgets or any(not 0 < b <= 1 for b in self.budgets):
            raise EdgedistalError(f"budgets {self.budgets} must lie in (0, 1]", "e.g. --budgets 0.05,0.1,0.2,0.3")
        if self.seeds < 1:
            raise EdgedistalError("--seeds must be at least 1")


@dataclass
class EvalResult:
    cells: pd.DataFrame  # one row per (method, budget, seed)
    summary: dict
    out_dir: Path


# -- arithmetic -------------------------------------------------------------------------------
def gain_over_chance(auc_subset: float, auc_full: float) -> float:
    """Share of the full-data AUC gain over chance that a subset keeps: (a−0.5)/(f−0.5)."""
    if not math.isfinite(auc_full) or auc_full <= 0.5 or not math.isfinite(auc_subset):
        return math.nan
    return (auc_subset - 0.5) / (auc_full - 0.5)


def aubc(budgets: Sequence[float], values: Sequence[float]) -> float:
    """Area under the budget curve (trapezoid), divided by the budget range: a mean AUC level."""
    b = np.asarray(budgets, dtype=float)
    v = np.asarray(values, dtype=float)
    order = np.argsort(b)
    b, v = b[order], v[order]
    if len(b) == 0 or not np.isfinite(v).all():
        return math.nan
    if len(b) == 1 or b[-1] == b[0]:
        return float(v.mean())
    return float(np.trapezoid(v, b) / (b[-1] - b[0]))


# -- subsets ----------------------------------------------------------------------------------
def random_subset(groups: np.ndarray, n: int, seed: int, mode: str = "samples") -> np.ndarray:
    """Seeded random row indices (sorted) of size ``n`` from a pool whose rows have ``groups``.

    ``samples`` draws rows uniformly; ``groups`` takes whole groups in random order and cuts at
    most one group to land on exactly ``n`` rows.
    """
    groups = np.asarray(groups).astype(str)
    if n > len(groups):
        raise EdgedistalError(f"cannot draw {n} random samples from a pool of {len(groups)}")
    rng = np.random.default_rng(seed)
    if mode == "samples":
        return np.sort(rng.choice(len(groups), size=n, replace=False))
    codes, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(codes))]
    picked: list[np.ndarray] = []
    left = n
    for k in rng.permutation(len(codes)):
        if left == 0:
            break
        rows = members[k]
        if len(rows) <= left:
            picked.append(rows)
            left -= len(rows)
    if left:  # fill from one not-yet-used group, cut to size
        used = set(np.concatenate(picked).tolist()) if picked else set()
        for k in rng.permutation(len(codes)):
            rows = np.array([r for r in members[k] if r not in used])
            if len(rows) >= left:
                picked.append(rng.choice(rows, size=left, replace=False))
                left = 0
                break
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def carve_val(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(groups)`` into (train, val) by group, val ≈ ``fraction`` of rows."""
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    target = fraction * len(groups)
    val_groups: set[str] = set()
    count = 0
    sizes = pd.Series(groups).value_counts()
    for g in uniq[rng.permutation(len(uniq))]:
        if count >= target or len(val_groups) >= len(uniq) - 1:
            break
        val_groups.add(g)
        count += int(sizes[g])
    is_val = np.isin(groups, list(val_groups))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def distilled_subset(distilled_dir: Path, budget: float) -> pd.DataFrame:
    """The distilled rows at ``budget``: ``milestones/budget_<b>.parquet``, else the first rows
    of ``distilled.parquet`` in acquisition order (round, rank) up to the budget's size."""
    distilled_dir = Path(distilled_dir)
    path = distilled_dir / "milestones" / f"budget_{budget:.3f}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    full = distilled_dir / "distilled.parquet"
    if not full.exists():
        raise EdgedistalError(
            f"{distilled_dir}: no milestones/budget_{budget:.3f}.parquet and no distilled.parquet",
            "pass the output folder of `edgedistal distill` run with these --milestones",
        )
    df = pd.read_parquet(full)
    cfg_path = distilled_dir / "config.json"
    pool_size = None
    if cfg_path.exists():
        info = read_json(cfg_path)
        pool_size = info.get("pool_size", info.get("pool"))
    if pool_size is None:
        raise EdgedistalError(
            f"{path}: missing, and {cfg_path} does not state the pool size",
            f"re-run `edgedistal distill` with --milestones including {budget}",
        )
    n = int(round(budget * int(pool_size)))
    if n > len(df):
        raise EdgedistalError(
            f"{full}: holds {len(df)} rows, budget {budget} needs {n}",
            "distil to a larger budget or drop that budget",
        )
    order = [c for c in ("round", "rank") if c in df.columns]
    return (df.sort_values(order) if order else df).head(n)


# -- the run ----------------------------------------------------------------------------------
def cell_key(method: str, budget: float, seed: int) -> str:
    return f"full_s{seed}" if method == "full" else f"{method}_b{budget:.3f}_s{seed}"


def _flatten_metrics(m: dict) -> dict:
    out = {}
    for level in ("frame", "video"):
        for k in METRIC_NAMES:
            out[f"{level}_{k}"] = float(m.get(level, {}).get(k, math.nan))
    return out


def _default_loader(manifest: Manifest, size: int, progress: bool) -> np.ndarray:
    from edgedistal.data.images import load_images

    return load_images(manifest.paths, size, progress=progress)


def _train_cell(
    idx: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    test_idx: np.ndarray,
    videos: np.ndarray,
    train_cfg: Any,
    cfg: EvalConfig,
    seed: int,
) -> dict:
    """Train one arm on rows ``idx`` of ``images`` with the shared protocol; test; return a record."""
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.models.predict import predict
    from edgedistal.models.train import fit

    tcfg = dataclasses.replace(train_cfg, seed=cfg.seed_offset + seed)
    if cfg.protocol == "early_stop":
        tr, va = carve_val(groups[idx], cfg.val_fraction, seed=cfg.seed_offset + seed)
        tr_idx, va_idx = idx[tr], idx[va]
    else:  # fixed compute: no validation, no early stop, final weights
        tr_idx, va_idx = idx, idx[:0]
        tcfg = dataclasses.replace(tcfg, patience=0)
        if cfg.protocol == "epochs":
            tcfg = dataclasses.replace(tcfg, max_steps=None)
    sort_tr = np.sort(tr_idx)  # sorted reads are much faster on a memory-mapped cache
    x_tr, y_tr = np.asarray(images[sort_tr]), labels[sort_tr]
    x_va = np.asarray(images[np.sort(va_idx)]) if len(va_idx) else None
    y_va = labels[np.sort(va_idx)] if len(va_idx) else None
    res = fit(x_tr, y_tr, x_va, y_va, tcfg, progress=False)
    t0 = time.perf_counter()
    probs, _ = predict(res.model, images[test_idx], device=tcfg.device)
    test_s = time.perf_counter() - t0
    metrics = compute_metrics(labels[test_idx], probs, videos[test_idx])
    rec = {
        "n_train": int(len(tr_idx)),
        "n_val": int(len(va_idx)),
        "n_real": int((labels[tr_idx] == 0).sum()),
        "n_fake": int((labels[tr_idx] == 1).sum()),
        "n_groups": int(len(np.unique(groups[idx]))),
        "steps": int(res.steps),
        "epochs": float(res.epochs),
        "samples_seen": int(res.samples_seen),
        "wall_s": float(res.wall_s),
        "images_per_s": float(res.images_per_s),
        "best_step": int(res.best_step),
        "best_val_auc": None if res.best_val_auc is None else float(res.best_val_auc),
        "stopped": getattr(res, "stopped", ""),
        "device": getattr(res, "device", ""),
        "test_s": test_s,
        "metrics": metrics,
        **_flatten_metrics(metrics),
    }
    return rec


def run_evaluation(
    manifest: Manifest,
    *,
    distilled_dir: str | Path | None = None,
    budgets: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    seeds: int = 3,
    train_cfg: Any,
    out_dir: str | Path,
    resume: bool = True,
    distill_cfg: Any = None,
    progress: bool = True,
    eval_cfg: EvalConfig | None = None,
    images: np.ndarray | None = None,
    image_loader: Callable[[Manifest, int, bool], np.ndarray] | None = None,
    split_seed: int = 0,
    time_budget_s: float | None = None,
    shard: tuple[int, int] | None = None,
) -> EvalResult:
    """Compare distilled, random and full training on the held-out test groups.

    ``manifest`` is split with :func:`ensure_split` (pool = ``train``, held-out = ``test``).
    ``distilled_dir``: output of ``edgedistal distill``; without it distillation runs once with
    ``distill_cfg`` (milestones = ``budgets``) into ``out_dir/distill``. ``images`` (uint8, aligned
    with ``manifest`` rows) skips loading. ``eval_cfg`` overrides budgets/seeds and sets the
    protocol. ``time_budget_s``: start no new model after this many seconds (the summary lists
    the skipped cells; a re-run finishes them). ``shard=(k, n)`` trains only cells ``i % n == k``
    of the plan, so ``n`` processes can share one GPU (small models leave it mostly idle). Returns the per-cell table and the summary (also
    written under ``out_dir``).
    """
    from edgedistal.data.split import ensure_split
    from edgedistal.utils.progress import track

    cfg = eval_cfg or EvalConfig()
    cfg = dataclasses.replace(cfg, budgets=tuple(float(b) for b in budgets), seeds=int(seeds)) if eval_cfg is None \
        else cfg
    cfg.validate()
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)

    if images is not None and len(images) != len(manifest):
        raise EdgedistalError(f"{len(images)} images for a manifest of {len(manifest)} rows")
    manifest = ensure_split(manifest, seed=split_seed)
    df = manifest.df
    pool_rows = np.flatnonzero((df["split"] == "train").to_numpy())
    test_rows = np.flatnonzero((df["split"] == "test").to_numpy())
    if len(pool_rows) == 0 or len(test_rows) == 0:
        raise EdgedistalError(
            "the manifest needs a train pool and a held-out test split",
            "split it by group (`edgedistal ingest` or group_split) with non-zero train and test fractions",
        )

    if distilled_dir is None:
        distilled_dir = _run_distill(manifest, distill_cfg, out / "distill", cfg.budgets, progress)
    distilled_dir = Path(distilled_dir)

    # Subsets as row indices into the manifest (and so into the one image array).
    row_of = pd.Series(np.arange(len(df)), index=df["sample_id"].astype(str).to_numpy())
    pool_set = set(pool_rows.tolist())
    subsets: dict[float, np.ndarray] = {}
    for b in cfg.budgets:
        sub = distilled_subset(distilled_dir, b)
        ids = sub["sample_id"].astype(str)
        unknown = ~ids.isin(row_of.index)
        if unknown.any():
            raise EdgedistalError(
                f"{distilled_dir}: {int(unknown.sum())} distilled sample(s) at budget {b} are not in the manifest",
                "evaluate with the manifest the distillation ran on",
            )
        rows = np.sort(row_of[ids.to_numpy()].to_numpy())
        leaked = [r for r in rows if r not in pool_set]
        if leaked:
            raise EdgedistalError(
                f"{distilled_dir}: {len(leaked)} distilled sample(s) at budget {b} lie outside the train pool",
                "distil and evaluate with the same split (same --split-seed)",
            )
        subsets[b] = rows

    labels = df["label"].to_numpy(np.int64)
    groups = df["group"].astype(str).to_numpy()
    videos = df["video"].astype(str).to_numpy()
    pool_groups = groups[pool_rows]

    plan: list[tuple[str, float, int, np.ndarray]] = []
    for s in range(cfg.seeds):
        for b in cfg.budgets:
            n = len(subsets[b])
            plan.append(("distilled", b, s, subsets[b]))
            rnd = random_subset(pool_groups, n, seed=10_000 + 97 * s + int(round(b * 1000)), mode=cfg.random_mode)
            plan.append(("random", b, s, pool_rows[rnd]))
        if cfg.include_full:
            plan.append(("full", 1.0, s, pool_rows))

    write_json_atomic(out / "eval_config.json", {
        "eval": asdict(cfg), "train": _asdict(train_cfg), "distilled_dir": str(distilled_dir.resolve()),
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)),
        "test_groups": int(len(np.unique(groups[test_rows]))), "split_seed": split_seed,
    })

    t_start = time.perf_counter()
    todo = [p for i, p in enumerate(plan)
            if not (resume and (out / "cells" / f"{cell_key(*p[:3])}.json").exists())
            and (shard is None or i % shard[1] == shard[0])]
    if todo and images is None:
        images = (image_loader or _default_loader)(manifest, train_cfg.image_size, progress)
    skipped: list[str] = []
    for method, b, s, idx in track(todo, total=len(todo), description="evaluating") if progress else todo:
        if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            skipped.append(cell_key(method, b, s))
            continue
        rec = _train_cell(idx, images, labels, groups, test_rows, videos, train_cfg, cfg, s)
        rec.update({"method": method, "budget": b, "seed": s, "protocol": cfg.protocol,
                    "budget_actual": len(idx) / len(pool_rows)})
        write_json_atomic(out / "cells" / f"{cell_key(method, b, s)}.json", rec)
        if progress:
            print(f"  {cell_key(method, b, s)}: n={rec['n_train']} steps={rec['steps']} "
                  f"{rec['wall_s']:.1f}s test AUC={rec['frame_auc']:.4f}", flush=True)

    cells = load_cells(out, keys=[cell_key(*p[:3]) for p in plan])
    summary = summarise(cells, cfg.budgets)
    summary.update({"protocol": cfg.protocol, "random_mode": cfg.random_mode,
                    "distilled_dir": str(distilled_dir.resolve()), "pool_size": int(len(pool_rows)),
                    "test_size": int(len(test_rows)), "skipped_cells": skipped})
    cells.drop(columns=["metrics"], errors="ignore").to_parquet(out / "cells.parquet", index=False)
    if skipped:
        summary["conclusion"] += f" (incomplete: {len(skipped)} model(s) skipped by the time budget)"
    write_json_atomic(out / "summary.json", summary)
    return EvalResult(cells, summary, out)


def _asdict(obj: Any) -> Any:
    return asdict(obj) if dataclasses.is_dataclass(obj) else dict(vars(obj)) if obj is not None else None


def _run_distill(manifest: Manifest, distill_cfg: Any, out: Path, budgets: Sequence[float], progress: bool) -> Path:
    """Distil once with milestones at the evaluation budgets (resumes a previous run)."""
    from edgedistal.distill import DistillConfig, run_distill

    dcfg = distill_cfg or DistillConfig()
    names = {f.name for f in dataclasses.fields(dcfg)}
    if "milestones" in names:
        dcfg = dataclasses.replace(dcfg, milestones=tuple(sorted(budgets)))
    if "budget" in names and isinstance(dcfg.budget, float) and dcfg.budget <= 1:
        dcfg = dataclasses.replace(dcfg, budget=max(max(budgets), dcfg.budget))
    result = run_distill(manifest, dcfg, out, resume=True, progress=progress)
    return Path(getattr(result, "out_dir", out))


def load_cells(out_dir: str | Path, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """All finished cells of an evaluation folder as a table (``keys`` restricts to a plan)."""
    folder = Path(out_dir) / "cells"
    files = sorted(folder.glob("*.json"))
    if keys is not None:
        wanted = set(keys)
        files = [f for f in files if f.stem in wanted]
    return pd.DataFrame([read_json(f) for f in files])


def summarise(cells: pd.DataFrame, budgets: Sequence[float], metric: str = "frame_auc") -> dict:
    """Budget curves (mean ± std over seeds), AUBC, gain over chance kept and wins vs random."""
    budgets = sorted(float(b) for b in budgets)
    if cells.empty:
        return {"budgets": budgets, "metric": metric, "curves": {}, "conclusion": "no finished cells"}
    metrics = [c for c in cells.columns if c.startswith(("frame_", "video_"))]
    curves: dict[str, dict] = {}
    for method in ("distilled", "random"):
        sub = cells[cells["method"] == method]
        rows = []
        for b in budgets:
            at = sub[np.isclose(sub["budget"].astype(float), b)]
            row: dict[str, Any] = {"budget": b, "n_seeds": int(len(at))}
            for m in metrics:
                vals = at[m].astype(float)
                row[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
                row[f"{m}_std"] = float(vals.std(ddof=0)) if len(vals) else math.nan
            for k in ("n_train", "wall_s", "steps", "samples_seen", "n_groups", "n_real", "n_fake"):
                row[k] = float(at[k].mean()) if len(at) and k in at else math.nan
            rows.append(row)
        curves[method] = {"points": rows}
    full = cells[cells["method"] == "full"]
    full_stats: dict[str, Any] = {"n_seeds": int(len(full))}
    for m in metrics:
        vals = full[m].astype(float)
        full_stats[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
        full_stats[f"{m}_std"] = float(vals.std(ddof=0)) if len(vals) else math.nan
    for k in ("n_train", "wall_s", "steps", "samples_seen"):
        full_stats[k] = float(full[k].mean()) if len(full) and k in full else math.nan

    f_auc = full_stats.get(f"{metric}_mean", math.nan)
    for method, c in curves.items():
        means = [p[f"{metric}_mean"] for p in c["points"]]
        c["aubc"] = aubc(budgets, means)
        # per-seed AUBC spread (the mean of per-seed AUBCs equals the AUBC of the mean curve)
        per_seed = []
        sub = cells[cells["method"] == method]
        for _, g in sub.groupby("seed"):
            vals = [g[np.isclose(g["budget"].astype(float), b)][metric].astype(float).mean() for b in budgets]
            per_seed.append(aubc(budgets, vals))
        finite = [v for v in per_seed if math.isfinite(v)]
        c["aubc_std"] = float(np.std(finite)) if finite else math.nan
        for p in c["points"]:
            p["gain_kept"] = gain_over_chance(p[f"{metric}_mean"], f_auc)
    d_pts, r_pts = curves["distilled"]["points"], curves["random"]["points"]
    wins = [
        bool(d[f"{metric}_mean"] > r[f"{metric}_mean"])
        for d, r in zip(d_pts, r_pts, strict=True)
        if math.isfinite(d[f"{metric}_mean"]) and math.isfinite(r[f"{metric}_mean"])
    ]
    summary = {
        "metric": metric,
        "budgets": budgets,
        "curves": curves,
        "full": full_stats,
        "wins_vs_random": int(sum(wins)),
        "compared_budgets": len(wins),
        "aubc_distilled": curves["distilled"]["aubc"],
        "aubc_random": curves["random"]["aubc"],
    }
    summary["conclusion"] = conclusion(summary)
    return summary


def conclusion(summary: dict, at: float = 0.2) -> str:
    """One line a person reads at a glance."""
    budgets = summary["budgets"]
    metric = summary.get("metric", "frame_auc")
    b = at if any(math.isclose(at, x) for x in budgets) else budgets[len(budgets) // 2]
    d = next(p for p in summary["curves"]["distilled"]["points"] if math.isclose(p["budget"], b))
    full = summary["full"].get(f"{metric}_mean", math.nan)
    parts = [f"Distilled {b:.0%}: AUC {d[f'{metric}_mean']:.3f}"]
    if math.isfinite(d.get("gain_kept", math.nan)):
        parts[0] += f", keeps {d['gain_kept']:.0%} of the full-data gain over chance (full {full:.3f})"
    if summary["compared_budgets"]:
        parts.append(f"beats random at {summary['wins_vs_random']}/{summary['compared_budgets']} budgets")
        parts.append(f"AUBC {summary['aubc_distilled']:.3f} vs random {summary['aubc_random']:.3f}")
    return "; ".join(parts)
