"""Distilled methods vs baselines vs the full pool, trained the same way, tested on held-out groups.

For each budget and seed the same recipe trains: every distilled method given (its milestone
subset at that budget), the three baselines of :mod:`edgedistal.pipeline.baselines` (``random``,
``balanced`` and a ``stratified`` arm per label mix the methods use), and once per seed the
full pool. Baselines and the full arm are shared by all methods, so comparing several
strategies costs one set of baselines. Protocols (recorded in ``eval_config.json`` and in
every cell):

* ``converged`` (default) – early stopping on a val set carved *by group* from the arm's own
  rows, best val-AUC weights restored, and a step cap that grows with the arm (``max_epochs``
  passes over its rows, at least ``min_steps``), so the full pool gets as many epochs as a
  subset. Each cell records whether val AUC was still rising over the last third of training.
* ``steps``  – the same number of optimiser steps for every arm ("same compute, which data?").
* ``epochs`` – the same number of passes for every arm.

The test split is never used for a decision. Each cell is written atomically to ``cells/`` with a
fingerprint of everything that decides its result (training config, protocol, manifest, the
exact subset, seed); a re-run reuses only cells whose fingerprint matches, retrains stale or
unreadable ones and says how many.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.models.train import TrainConfig
from edgedistal.pipeline.baselines import (  # noqa: F401  (re-exported: the evaluation's public names)
    balanced_subset,
    carve_val,
    distilled_name,
    distilled_subset,
    random_subset,
    stratified_name,
    stratified_subset,
    subset_seed,
)
from edgedistal.pipeline.compare import aubc, flag_chance, gain_over_chance, summarise  # noqa: F401
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

if TYPE_CHECKING:  # distill imports evaluate's baselines; the type only
    from edgedistal.pipeline.distill import DistillConfig

log_ = logging.getLogger(__name__)

PROTOCOLS = ("converged", "steps", "epochs")
RESERVED = ("random", "balanced", "full")
#: Test metrics kept per cell (frame and video level), as ``<level>_<name>``.
METRIC_NAMES = ("auc", "ap", "eer", "balanced_acc", "acc", "log_loss")
#: Training options that change where a model runs, not what it learns: not fingerprinted.
_NOT_FINGERPRINTED = ("device", "num_threads", "time_budget_s", "compile", "device_data_max_frac")


@dataclass
class EvalConfig:
    """How the comparison is run; saved next to the results so a report can state it."""

    budgets: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    seeds: int = 3
    protocol: str = "converged"
    #: ``samples``: uniform over pool samples (the usual active-learning baseline);
    #: ``groups``: whole identity groups in random order (at most one group cut to hit the size).
    random_mode: str = "samples"
    val_fraction: float = 0.15  # converged: share of the arm's rows (by group) held out for val
    max_epochs: float = 30.0  # converged: step cap = this many passes over the arm's train rows
    min_steps: int = 200  # converged: tiny arms still get this many steps
    max_steps: int | None = None  # converged: hard cap for every arm (None: none)
    patience: int = 5  # converged: evaluations without a val-AUC gain before stopping
    converge_tol: float = 0.01  # val AUC rising more than this over the last third = not converged
    include_full: bool = True
    baselines: tuple[str, ...] = ("random", "balanced", "stratified")
    seed_offset: int = 0  # training seed = seed_offset + seed index
    notes: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.protocol == "early_stop":  # the name before the step cap grew with the arm
            self.protocol = "converged"
        if self.protocol not in PROTOCOLS:
            raise EdgedistalError(f"unknown protocol {self.protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
        if self.random_mode not in ("samples", "groups"):
            raise EdgedistalError(f"unknown random mode {self.random_mode!r}", "use samples or groups")
        if not self.budgets or any(not (0 < b <= 1) for b in self.budgets):
            raise EdgedistalError(f"budgets {self.budgets} must lie in (0, 1]", "e.g. --budgets 0.05,0.1,0.2,0.3")
        if self.seeds < 1:
            raise EdgedistalError("--seeds must be at least 1")
        unknown = set(self.baselines) - {"random", "balanced", "stratified"}
        if unknown:
            raise EdgedistalError(f"unknown baseline(s) {sorted(unknown)}", "use random, balanced, stratified")
        if not (0 < self.val_fraction < 1) or not (self.max_epochs > 0) or self.min_steps < 1:
            raise EdgedistalError("converged protocol needs 0 < val_fraction < 1, max_epochs > 0, min_steps ≥ 1")


@dataclass
class EvalResult:
    cells: pd.DataFrame  # one row per (arm, budget, seed)
    summary: dict
    out_dir: Path


@dataclass
class Arm:
    """One model to train: which rows, what it is, how its cell is named."""

    arm: str
    kind: str  # "distilled" | "baseline" | "full"
    budget: float
    seed: int
    rows: np.ndarray  # manifest row positions
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"full_s{self.seed}" if self.kind == "full" else f"{self.arm}_b{self.budget:.3f}_s{self.seed}"


# -- fingerprints -----------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_digest(df: pd.DataFrame, rows: np.ndarray) -> str:
    """What identifies the pool/test data: sample ids, labels and groups of ``rows``, in order."""
    part = df.iloc[rows]
    h = hashlib.sha256()
    for col in ("sample_id", "label", "group", "split"):
        h.update(pd.util.hash_pandas_object(part[col].astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def train_fingerprint(train_cfg: TrainConfig, cfg: EvalConfig) -> dict[str, Any]:
    """The recipe part of a cell's fingerprint: training config + protocol, minus where it runs."""
    tc = {k: v for k, v in asdict(train_cfg).items() if k not in _NOT_FINGERPRINTED and k != "seed"}
    proto = {"protocol": cfg.protocol, "seed_offset": cfg.seed_offset}
    if cfg.protocol == "converged":
        proto.update(val_fraction=cfg.val_fraction, max_epochs=cfg.max_epochs, min_steps=cfg.min_steps,
                     max_steps=cfg.max_steps, patience=cfg.patience)
        tc.pop("max_steps", None)
        tc.pop("epochs", None)
        tc.pop("patience", None)
    return {"train": tc, "protocol": proto}


def cell_fingerprint(recipe: dict, data_digest: str, arm: Arm, sample_ids: np.ndarray) -> str:
    return _digest({"recipe": recipe, "data": data_digest, "seed": arm.seed,
                    "subset": _digest(sorted(sample_ids[arm.rows].tolist()))})


# -- training one cell ------------------------------------------------------------------------
def _flatten_metrics(m: dict) -> dict:
    out = {}
    for level in ("frame", "video"):
        for k in METRIC_NAMES:
            out[f"{level}_{k}"] = float(m.get(level, {}).get(k, math.nan))
    return out


def _default_loader(manifest: Manifest, size: int, progress: bool) -> np.ndarray:
    from edgedistal.data.images import load_images

    return load_images(manifest.paths, size, progress=progress)


def converged_steps(n_train: int, batch_size: int, cfg: EvalConfig) -> int:
    """The converged protocol's step cap: ``max_epochs`` passes, within [min_steps, max_steps]."""
    steps = max(cfg.min_steps, math.ceil(cfg.max_epochs * n_train / max(1, min(batch_size, n_train))))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def val_rise_last_third(history: Sequence[dict]) -> float:
    """How much val AUC rose over the last third of training (least-squares slope × span)."""
    pts = [(h["step"], h["val_auc"]) for h in history if math.isfinite(h.get("val_auc", math.nan))]
    if len(pts) < 3:
        return math.nan
    last = pts[-1][0]
    tail = [(s, v) for s, v in pts if s >= last * 2 / 3]
    if len(tail) < 2:
        tail = pts[-2:]
    s, v = np.array(tail, dtype=float).T
    if s[-1] == s[0]:
        return 0.0
    slope = np.polyfit(s, v, 1)[0]
    return float(slope * (s[-1] - s[0]))


def train_cell(arm: Arm, images: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_idx: np.ndarray,
               videos: np.ndarray, train_cfg: TrainConfig, cfg: EvalConfig) -> dict:
    """Train one arm with the protocol, score the test split, return the cell record."""
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.models.predict import predict
    from edgedistal.models.train import fit

    idx = arm.rows
    tcfg = dataclasses.replace(train_cfg, seed=cfg.seed_offset + arm.seed)
    if cfg.protocol == "converged":
        tr, va = carve_val(groups[idx], cfg.val_fraction, seed=cfg.seed_offset + arm.seed)
        tr_idx, va_idx = idx[tr], idx[va]
        tcfg = dataclasses.replace(tcfg, max_steps=converged_steps(len(tr_idx), tcfg.batch_size, cfg),
                                   patience=cfg.patience, eval_every=0)
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
    rise = val_rise_last_third(res.history)
    # None under a fixed-compute protocol: without val there is nothing to judge convergence by
    converged = None if cfg.protocol != "converged" else bool(
        res.stopped == "early_stop" or not (math.isfinite(rise) and rise > cfg.converge_tol))
    return {
        "n_train": int(len(tr_idx)), "n_val": int(len(va_idx)),
        "n_real": int((labels[idx] == 0).sum()), "n_fake": int((labels[idx] == 1).sum()),
        "n_groups": int(len(np.unique(groups[idx]))),
        "steps": int(res.steps), "step_cap": int(tcfg.max_steps or res.steps), "epochs": float(res.epochs),
        "samples_seen": int(res.samples_seen), "wall_s": float(res.wall_s),
        "images_per_s": float(res.images_per_s), "best_step": int(res.best_step),
        "best_val_auc": None if res.best_val_auc is None else float(res.best_val_auc),
        "val_rise_last_third": rise, "converged": converged, "stopped": res.stopped,
        "device": res.device, "precision": res.precision, "test_s": test_s,
        "metrics": metrics, **_flatten_metrics(metrics),
    }


# -- planning ---------------------------------------------------------------------------------
def _valid_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+._-]*", name) or name in RESERVED or name.startswith("stratified"):
        raise EdgedistalError(
            f"method name {name!r} is not usable",
            "name distilled methods with letters, digits and + . _ - (not random, balanced, full, stratified*)",
        )
    return name


def as_methods(distilled: str | Path | Mapping[str, str | Path] | Sequence[Any] | None) -> dict[str, Path]:
    """Normalise ``DIR``, ``NAME=DIR`` strings, (name, dir) pairs or a mapping into {name: dir}."""
    if distilled is None:
        return {}
    if isinstance(distilled, Mapping):
        items = list(distilled.items())
    else:
        seq = [distilled] if isinstance(distilled, str | Path) else list(distilled)
        items = []
        for x in seq:
            if isinstance(x, tuple):
                items.append(x)
            elif isinstance(x, str) and "=" in x:
                items.append(tuple(x.split("=", 1)))
            else:
                items.append((None, x))
    out: dict[str, Path] = {}
    for name, d in items:
        d = Path(d)
        if not d.is_dir():
            raise EdgedistalError(f"{d}: distillation folder not found", "pass the --out folder of `edgedistal distill`")
        name = _valid_name(str(name) if name else distilled_name(d))
        if name in out:
            raise EdgedistalError(f"two distilled methods are named {name!r}", "name them: --distilled NAME=DIR")
        out[name] = d
    return out


def _method_rows(name: str, ddir: Path, b: float, row_of: pd.Series, pool_set: set[int]) -> np.ndarray:
    ids = distilled_subset(ddir, b)["sample_id"].astype(str)
    unknown = ~ids.isin(row_of.index)
    if unknown.any():
        raise EdgedistalError(
            f"{ddir}: {int(unknown.sum())} distilled sample(s) of {name} at budget {b} are not in the manifest",
            "evaluate with the manifest the distillation ran on")
    rows = np.sort(row_of[ids.to_numpy()].to_numpy())
    if any(r not in pool_set for r in rows):
        raise EdgedistalError(
            f"{ddir}: distilled samples of {name} at budget {b} lie outside the train pool",
            "distil and evaluate with the same split (same --split-seed)")
    return rows


def plan_arms(df: pd.DataFrame, pool_rows: np.ndarray, methods: Mapping[str, Path], cfg: EvalConfig) -> list[Arm]:
    """Every model of the evaluation: per seed the full pool, then per budget methods + baselines."""
    labels = df["label"].to_numpy(np.int64)
    groups = df["group"].astype(str).to_numpy()
    row_of = pd.Series(np.arange(len(df)), index=df["sample_id"].astype(str).to_numpy())
    pool_set = set(pool_rows.tolist())
    subsets = {(m, b): _method_rows(m, d, b, row_of, pool_set) for m, d in methods.items() for b in cfg.budgets}
    pool_labels, pool_groups = labels[pool_rows], groups[pool_rows]
    arms: list[Arm] = []
    for s in range(cfg.seeds):
        if cfg.include_full:
            arms.append(Arm("full", "full", 1.0, s, pool_rows))
        for b in cfg.budgets:
            n = int(round(b * len(pool_rows)))
            if n < 2:
                raise EdgedistalError(f"budget {b} is {n} sample(s) of a {len(pool_rows)}-sample pool",
                                      "use larger budgets or a larger pool")
            mixes: dict[str, float] = {}
            for m in methods:
                rows = subsets[(m, b)]
                share = float((labels[rows] == 0).mean()) if len(rows) else 0.5
                strat = stratified_name(share)
                mixes.setdefault(strat, round(share, 2))
                arms.append(Arm(m, "distilled", b, s, rows, {"real_share": share, "stratified_arm": strat}))
            if "random" in cfg.baselines:
                pos = random_subset(pool_groups, n, seed=subset_seed("random", b, s), mode=cfg.random_mode)
                arms.append(Arm("random", "baseline", b, s, pool_rows[pos]))
            if "balanced" in cfg.baselines:
                pos = balanced_subset(pool_labels, n, seed=subset_seed("balanced", b, s))
                arms.append(Arm("balanced", "baseline", b, s, pool_rows[pos]))
            if "stratified" in cfg.baselines:
                for strat, share in sorted(mixes.items()):
                    pos = stratified_subset(pool_labels, pool_groups, n, share, seed=subset_seed(strat, b, s))
                    arms.append(Arm(strat, "baseline", b, s, pool_rows[pos], {"real_share": share}))
    return arms


# -- cells on disk ----------------------------------------------------------------------------
def read_cell(path: Path, fingerprint: str) -> tuple[dict | None, str]:
    """(record, status) with status ``ok``, ``missing``, ``stale`` or ``corrupt``."""
    if not path.exists():
        return None, "missing"
    try:
        rec = read_json(path)
    except (ValueError, OSError, UnicodeDecodeError):
        return None, "corrupt"
    if not isinstance(rec, dict):
        return None, "corrupt"
    return (rec, "ok") if rec.get("fingerprint") == fingerprint else (None, "stale")


def load_cells(out_dir: str | Path, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """All readable cells of an evaluation folder as a table (``keys`` restricts to a plan)."""
    folder = Path(out_dir) / "cells"
    files = sorted(folder.glob("*.json"))
    if keys is not None:
        wanted = set(keys)
        files = [f for f in files if f.stem in wanted]
    recs = []
    for f in files:
        try:
            recs.append(read_json(f))
        except (ValueError, OSError):
            continue
    return pd.DataFrame(recs)


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


# -- the run ----------------------------------------------------------------------------------
def run_evaluation(
    manifest: Manifest,
    *,
    distilled: str | Path | Mapping[str, str | Path] | Sequence[Any] | None = None,
    train_cfg: TrainConfig,
    out_dir: str | Path,
    eval_cfg: EvalConfig | None = None,
    resume: bool = True,
    distill_cfg: DistillConfig | None = None,
    progress: bool = True,
    images: np.ndarray | None = None,
    image_loader: Callable[[Manifest, int, bool], np.ndarray] | None = None,
    split_seed: int = 0,
    time_budget_s: float | None = None,
    shard: tuple[int, int] | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    """Train every arm of the plan (resuming matching cells) and summarise on the test groups.

    ``manifest`` is split with :func:`ensure_split` (pool = ``train``, held-out = ``test``).
    ``distilled``: ``DIR``, ``NAME=DIR`` strings or a ``{name: dir}`` mapping of
    ``edgedistal distill`` outputs; without it, distillation runs once with ``distill_cfg``
    (milestones = budgets) into ``out_dir/distill``. ``eval_cfg`` holds budgets, seeds and the
    protocol. ``images`` (uint8, aligned with the manifest) skips loading. ``time_budget_s``:
    start no new model after this many seconds (a re-run finishes them). ``shard=(k, n)``
    trains only arms ``i % n == k`` so ``n`` processes can share a GPU.
    """
    from edgedistal.data.split import ensure_split
    from edgedistal.utils.progress import track

    say = log or log_.info
    cfg = dataclasses.replace(eval_cfg) if eval_cfg is not None else EvalConfig()
    cfg.budgets = tuple(sorted(float(b) for b in cfg.budgets))
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
    methods = as_methods(distilled)
    if not methods:
        ddir = _run_distill(manifest, distill_cfg, out / "distill", cfg.budgets, progress)
        methods = {_valid_name(distilled_name(ddir)): ddir}

    arms = plan_arms(df, pool_rows, methods, cfg)
    labels = df["label"].to_numpy(np.int64)
    groups = df["group"].astype(str).to_numpy()
    videos = df["video"].astype(str).to_numpy()
    sample_ids = df["sample_id"].astype(str).to_numpy()
    recipe = train_fingerprint(train_cfg, cfg)
    data_digest = manifest_digest(df, np.concatenate([pool_rows, test_rows]))
    prints = {a.key: cell_fingerprint(recipe, data_digest, a, sample_ids) for a in arms}

    write_json_atomic(out / "eval_config.json", {
        "eval": asdict(cfg), "train": asdict(train_cfg),
        "methods": {m: str(d.resolve()) for m, d in methods.items()},
        "distilled_dir": str(next(iter(methods.values())).resolve()),
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)),
        "test_groups": int(len(np.unique(groups[test_rows]))), "split_seed": split_seed,
        "data_digest": data_digest,
    })

    status: dict[str, int] = {"ok": 0, "missing": 0, "stale": 0, "corrupt": 0}
    todo: list[Arm] = []
    for i, a in enumerate(arms):
        path = out / "cells" / f"{a.key}.json"
        _, st = read_cell(path, prints[a.key]) if resume else (None, "missing")
        status[st] += 1
        if st == "corrupt":
            say(f"{path}: unreadable cell, retraining it")
        if st != "ok" and (shard is None or i % shard[1] == shard[0]):
            todo.append(a)
    if status["stale"]:
        say(f"{status['stale']} cell(s) in {out / 'cells'} were trained with other settings or data: retraining them")
    if status["ok"]:
        say(f"reusing {status['ok']} finished cell(s) with matching fingerprints")
    if todo and images is None:
        images = (image_loader or _default_loader)(manifest, train_cfg.image_size, progress)

    t_start = time.perf_counter()
    skipped: list[str] = []
    for a in track(todo, total=len(todo), description="evaluating") if progress else todo:
        if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            skipped.append(a.key)
            continue
        rec = train_cell(a, images, labels, groups, test_rows, videos, train_cfg, cfg)
        rec.update({"cell": a.key, "arm": a.arm, "kind": a.kind, "budget": a.budget, "seed": a.seed,
                    "protocol": cfg.protocol, "budget_actual": len(a.rows) / len(pool_rows),
                    "fingerprint": prints[a.key], **a.extra})
        write_json_atomic(out / "cells" / f"{a.key}.json", rec)
        say(f"  {a.key}: n={rec['n_train']} steps={rec['steps']}/{rec['step_cap']} {rec['wall_s']:.1f}s "
            f"test AUC={rec['frame_auc']:.4f}{' (not converged)' if rec['converged'] is False else ''}")

    done = []
    for a in arms:
        rec, st = read_cell(out / "cells" / f"{a.key}.json", prints[a.key])
        if rec is not None:
            done.append(rec)
    cells = pd.DataFrame(done)
    summary = summarise(cells, cfg.budgets)
    n_fake = int(labels[test_rows].sum())
    flag_chance(summary, n_fake, len(test_rows) - n_fake)
    summary.update({
        "protocol": cfg.protocol, "random_mode": cfg.random_mode, "methods": {m: str(d) for m, d in methods.items()},
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)), "skipped_cells": skipped,
        "planned_cells": len(arms), "finished_cells": len(done),
        "resume": {"reused": status["ok"], "stale_retrained": status["stale"], "corrupt_retrained": status["corrupt"]},
    })
    if len(done) < len(arms):
        summary["conclusion"] += f" (incomplete: {len(done)}/{len(arms)} models finished)"
    if not cells.empty:
        write_parquet_atomic(cells.drop(columns=["metrics"], errors="ignore"), out / "cells.parquet")
    write_json_atomic(out / "summary.json", summary)
    return EvalResult(cells, summary, out)


def _run_distill(manifest: Manifest, distill_cfg: DistillConfig | None, out: Path, budgets: Sequence[float],
                 progress: bool) -> Path:
    """Distil once with milestones at the evaluation budgets (resumes a previous run). The
    budgets are the one source: a ``distill_cfg`` with other milestones is refused, not overridden."""
    from edgedistal.pipeline.distill import DistillConfig, run_distill

    dcfg = distill_cfg or DistillConfig()
    want = tuple(sorted(float(b) for b in budgets))
    if dcfg.milestones and tuple(sorted(float(m) for m in dcfg.milestones)) != want:
        raise EdgedistalError(f"distill_cfg.milestones {tuple(dcfg.milestones)} differ from the evaluation budgets {want}",
                              "leave distill_cfg.milestones empty: evaluate sets them to its budgets")
    dcfg = dataclasses.replace(dcfg, milestones=want)
    if isinstance(dcfg.budget, float) and dcfg.budget <= 1:
        dcfg = dataclasses.replace(dcfg, budget=max(max(want), dcfg.budget))
    result = run_distill(manifest, dcfg, out, resume=True, progress=progress)
    return Path(getattr(result, "out_dir", out))
