"""Distilled methods vs baselines vs the full pool, trained the same way, tested on held-out groups.

For each budget and seed the same recipe trains: every distilled method given (its milestone
subset at that budget), the three baselines of :mod:`edgedistal.pipeline.baselines` (``random``,
``balanced`` and a ``stratified`` arm per label mix the methods use), and once per seed the
full pool. Baselines and the full arm are shared by all methods, so comparing several
strategies costs one set of baselines. Protocols (recorded in ``eval_config.json`` and in
every cell):

* ``converged`` (default) – early stopping on a val set carved *by group* from the arm's own
  rows, best val-AUC weights restored, and a step cap that follows the arm's val curve: a
  first run of ``max_epochs`` passes over its rows (at least ``min_steps``); while a run hits its
  cap with val AUC still rising, it is retrained from the same seed with the cap ×``grow``, up to
  ``ceiling_epochs`` passes. An arm still rising at the ceiling is flagged ``capped_improving``.
  (Retrained, not extended: the one-cycle schedule anneals to the cap, so a model stopped by
  patience under a far-away cap would stop at a high learning rate.) Each cell keeps the run
  with the best val AUC: a longer retraining can stop lower than the run it replaces.
* ``steps``  – the same number of optimiser steps for every arm ("same compute, which data?").
* ``epochs`` – the same number of passes for every arm.

Pairing: at a budget and seed, every arm (method, baselines, RS2) trains with the same training
seed (``seed_offset + seed``: same init weights and batch-order generator) and carves its val
rows with the same seed and rule (or, with ``val_source="split"``, all stop on the same shared
val rows), so the comparison tests per-seed differences
(:func:`edgedistal.pipeline.compare.paired_diff`). Each cell records ``train_seed`` and
``val_seed`` so the pairing can be checked. ``rs2`` (Okanovic et al., ICLR 2024) trains on a
fresh uniform subset of the budget's size every epoch, drawn from the whole pool, for exactly
the samples its budget's ``random`` arm saw.

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
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from edgedistal.data.distilled import method_name, subset_at
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.models.train import TrainConfig
from edgedistal.pipeline.baselines import (  # noqa: F401  (re-exported: the evaluation's public names)
    balanced_subset,
    carve_val,
    random_subset,
    stratified_name,
    stratified_subset,
    subset_seed,
)
from edgedistal.pipeline.compare import aubc, capped, flag_chance, gain_over_chance, summarise  # noqa: F401
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

if TYPE_CHECKING:  # distill imports evaluate's baselines; the type only
    from edgedistal.pipeline.distill import DistillConfig

log_ = logging.getLogger(__name__)

PROTOCOLS = ("converged", "steps", "epochs")
RESERVED = ("random", "balanced", "full", "rs2")
#: The default budget curve: selection matters most at 1-5 % (METHODS.md, "enough power").
DEFAULT_BUDGETS = (0.01, 0.02, 0.05, 0.1, 0.2)
BASELINES = ("random", "balanced", "stratified", "rs2")


def auto_seeds(budget: float) -> int:
    """``--seeds auto``: small arms are cheap and noisy, so 5 seeds at ≤ 5 %, 3 above."""
    return 5 if budget <= 0.05 + 1e-9 else 3


def parse_seeds(value: int | str) -> int | str:
    """``auto`` or a positive int (CLI text accepted)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise EdgedistalError(f"--seeds {value!r} is neither a number nor auto", "e.g. --seeds 5 or --seeds auto") from None
    if n < 1:
        raise EdgedistalError("--seeds must be at least 1", "e.g. --seeds 5 or --seeds auto")
    return n
#: Test metrics kept per cell (frame and video level), as ``<level>_<name>``.
METRIC_NAMES = ("auc", "ap", "eer", "balanced_acc", "acc", "log_loss")
#: Where the converged protocol early-stops (see EvalConfig.val_source).
VAL_SOURCES = ("carve", "split")
#: Training options that change where a model runs, not what it learns: not fingerprinted.
_NOT_FINGERPRINTED = ("device", "num_threads", "time_budget_s", "compile", "device_data_max_frac")


@dataclass
class EvalConfig:
    """How the comparison is run; saved next to the results so a report can state it."""

    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    seeds: int | str = "auto"  # an int for every budget, or "auto" (see auto_seeds)
    protocol: str = "converged"
    #: ``samples``: uniform over pool samples (the usual active-learning baseline);
    #: ``groups``: whole identity groups in random order (at most one group cut to hit the size).
    random_mode: str = "samples"
    #: converged: where each arm early-stops. ``carve``: a by-group ``val_fraction`` of the arm's
    #: own rows (every label inside the budget); ``split``: the manifest's val split, the same rows
    #: for every arm (labels outside the budget, as `edgedistal train` uses them): small arms keep
    #: all their rows for training and stop on a val set large enough to trust.
    val_source: str = "carve"
    val_fraction: float = 0.15  # converged, carve: share of the arm's rows (by group) held out for val
    val_max: int | None = None  # converged, split: at most this many val rows (whole groups, fixed draw)
    max_epochs: float = 30.0  # converged: step cap = this many passes over the arm's train rows
    min_steps: int = 200  # converged: tiny arms still get this many steps
    max_steps: int | None = None  # converged: hard cap for every arm (None: none)
    patience: int = 5  # converged: evaluations without a val-AUC gain before stopping
    converge_tol: float = 0.01  # val AUC rising more than this over the last third = not converged
    ceiling_epochs: float = 96.0  # converged: a still-improving arm is retrained with a larger cap up to this
    #: converged: the full arm's first cap in passes (None: ``max_epochs``). The full pool converges
    #: long after small arms; starting it at 12 passes retrains it at 12, 24 and 48 before the run that counts.
    full_max_epochs: float | None = None
    grow: float = 2.0  # converged: cap × this per retraining
    include_full: bool = True
    full_seeds: int | None = None  # seeds of the full arm (None: the seeds of the largest budget)
    baselines: tuple[str, ...] = BASELINES
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
            raise EdgedistalError(f"budgets {self.budgets} must lie in (0, 1]", "e.g. --budgets 0.01,0.02,0.05,0.1,0.2")
        self.seeds = parse_seeds(self.seeds)
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise EdgedistalError(f"unknown baseline(s) {sorted(unknown)}", f"use {', '.join(BASELINES)}")
        if self.val_source not in VAL_SOURCES:
            raise EdgedistalError(f"unknown val source {self.val_source!r}", f"use one of {', '.join(VAL_SOURCES)}")
        if self.val_max is not None and self.val_max < 2:
            raise EdgedistalError(f"val_max {self.val_max} must be ≥ 2", "e.g. --val-max 1000, or leave it out")
        if not (0 < self.val_fraction < 1) or not (self.max_epochs > 0) or self.min_steps < 1:
            raise EdgedistalError("converged protocol needs 0 < val_fraction < 1, max_epochs > 0, min_steps ≥ 1")
        if not (self.ceiling_epochs >= self.max_epochs) or not (self.grow > 1):
            raise EdgedistalError(f"ceiling_epochs {self.ceiling_epochs} must be ≥ max_epochs {self.max_epochs} "
                                  f"and grow {self.grow} > 1", "e.g. --max-epochs 12 --ceiling-epochs 96")
        if self.full_max_epochs is not None and not (0 < self.full_max_epochs <= self.ceiling_epochs):
            raise EdgedistalError(f"full_max_epochs {self.full_max_epochs} must lie in (0, ceiling_epochs "
                                  f"{self.ceiling_epochs}]", "e.g. --full-max-epochs 48 --ceiling-epochs 96")

    def seeds_at(self, budget: float) -> int:
        """Seeds at ``budget`` (``auto``: more where arms are small)."""
        return auto_seeds(budget) if self.seeds == "auto" else int(self.seeds)

    def n_full_seeds(self) -> int:
        return self.full_seeds or self.seeds_at(max(self.budgets))


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
    """What identifies the pool/test data: sample ids, labels, groups and splits of ``rows`` in
    order, and each file's size and mtime (as the image cache keys it): an image replaced in
    place makes the cells that trained or tested on it stale. One stat per file, once per run."""
    part = df.iloc[rows]
    h = hashlib.sha256()
    for col in ("sample_id", "label", "group", "split"):
        h.update(pd.util.hash_pandas_object(part[col].astype(str), index=False).to_numpy().tobytes())
    stats = []
    for p in part["path"].astype(str):
        try:
            st = os.stat(p)
            stats.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            stats.append("missing")
    h.update("|".join(stats).encode())
    return h.hexdigest()[:16]


def train_fingerprint(train_cfg: TrainConfig, cfg: EvalConfig) -> dict[str, Any]:
    """The recipe part of a cell's fingerprint: training config + protocol, minus where it runs."""
    tc = {k: v for k, v in asdict(train_cfg).items() if k not in _NOT_FINGERPRINTED and k != "seed"}
    if tc.get("init"):  # every arm starts from this embedder: its bytes, not its path, decide the cell
        from edgedistal.utils.io import sha256_file

        tc["init"] = sha256_file(tc["init"])
    else:
        tc.pop("init", None)  # cells made before --init existed keep their fingerprints
    proto = {"protocol": cfg.protocol, "seed_offset": cfg.seed_offset}
    if cfg.protocol == "converged":
        proto.update(val_fraction=cfg.val_fraction, max_epochs=cfg.max_epochs, min_steps=cfg.min_steps,
                     max_steps=cfg.max_steps, patience=cfg.patience)
        if cfg.val_source != "carve":  # cells made before val_source existed keep their fingerprints
            proto.update(val_source=cfg.val_source, val_max=cfg.val_max)
            proto.pop("val_fraction")
        tc.pop("max_steps", None)
        tc.pop("epochs", None)
        tc.pop("patience", None)
    return {"train": tc, "protocol": proto}


def full_recipe(recipe: dict, cfg: EvalConfig) -> dict:
    """The full arm's recipe: its own first cap, where set, is part of it (the other arms' is not)."""
    if cfg.protocol != "converged" or not cfg.full_max_epochs:
        return recipe
    return {**recipe, "protocol": {**recipe["protocol"], "full_max_epochs": cfg.full_max_epochs}}


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


def shared_val_rows(df: pd.DataFrame, val_max: int | None, seed: int = 0) -> np.ndarray:
    """The manifest's val rows every arm early-stops on (``val_source="split"``), sorted.

    With ``val_max``, whole groups in a fixed random order until ``val_max`` rows (the last group
    cut), so the set is the same for every arm, seed and re-run; it must hold both labels."""
    rows = np.flatnonzero((df["split"] == "val").to_numpy())
    if len(rows) == 0:
        raise EdgedistalError("the manifest has no val split to early-stop on",
                              "split it with a val fraction (e.g. 0.8/0.1/0.1), or use --val-source carve")
    if val_max is not None and len(rows) > val_max:
        groups = df["group"].astype(str).to_numpy()[rows]
        order = np.random.default_rng(seed).permutation(np.unique(groups))
        rank = pd.Series(np.arange(len(order)), index=order)[groups].to_numpy()
        rows = rows[np.argsort(rank, kind="stable")][:val_max]
    labels = df["label"].to_numpy()[rows]
    if len(np.unique(labels)) < 2:
        raise EdgedistalError(f"the shared val set ({len(rows)} rows) holds one label only",
                              "raise --val-max, or use --val-source carve")
    return np.sort(rows)


def converged_steps(n_train: int, batch_size: int, cfg: EvalConfig, full: bool = False) -> int:
    """The converged protocol's first step cap: ``max_epochs`` passes (the full arm:
    ``full_max_epochs`` where set), within [min_steps, max_steps]."""
    passes = cfg.full_max_epochs if full and cfg.full_max_epochs else cfg.max_epochs
    steps = max(cfg.min_steps, math.ceil(passes * n_train / max(1, min(batch_size, n_train))))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def ceiling_steps(n_train: int, batch_size: int, cfg: EvalConfig) -> int:
    """The converged protocol's ceiling: ``ceiling_epochs`` passes (≥ the first cap, ≤ max_steps)."""
    steps = max(cfg.min_steps, math.ceil(cfg.ceiling_epochs * n_train / max(1, min(batch_size, n_train))))
    steps = max(steps, converged_steps(n_train, batch_size, cfg))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def next_cap(cap: int, ceiling: int, cfg: EvalConfig) -> int | None:
    """The cap of the next retraining of a still-improving arm, or None at the ceiling."""
    return None if cap >= ceiling else min(ceiling, math.ceil(cap * cfg.grow))


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


def kept_attempt(history: Sequence[Mapping[str, Any]]) -> int:
    """The attempt whose model a cell keeps: the best val AUC (the later one on a tie).

    A retraining with a larger cap is a new run, not a continuation, and its early stop can land
    lower than the shorter run it replaces (on DFDC dev, 17 of 23 escalated cells did, by up to
    0.069 val AUC): keeping the last attempt would score an arm below what it reached."""
    vals = [a.get("best_val_auc") for a in history]
    vals = [v if v is not None and math.isfinite(v) else -math.inf for v in vals]
    return max(range(len(vals)), key=lambda i: (vals[i], i))


def needs_reproduce(rec: Mapping[str, Any]) -> bool:
    """A cell written before cells kept their best attempt, whose best attempt is not its last."""
    attempts = rec.get("attempts")
    attempts = [] if attempts is None else list(attempts)
    return "kept_attempt" not in rec and len(attempts) > 1 and kept_attempt(attempts) != len(attempts) - 1


def _improving(attempt: Mapping[str, Any], cfg: EvalConfig) -> bool:
    """Did this run hit its cap with val AUC still rising (the converged protocol's retrain test)?"""
    rise = attempt.get("val_rise_last_third")
    return (cfg.protocol == "converged" and attempt.get("stopped") == "steps" and rise is not None
            and math.isfinite(rise) and rise > cfg.converge_tol)


def _cell_rows(arm: Arm, groups: np.ndarray, cfg: EvalConfig, ref: Mapping[str, Any] | None,
               val_rows: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The arm's training rows and the rows its early stopping reads (none without val)."""
    idx = arm.rows
    if cfg.protocol != "converged":
        return idx, idx[:0]
    if val_rows is not None:  # every row trains; the shared set stops
        return idx, np.asarray(val_rows)
    frac = cfg.val_fraction if ref is None else max(1, int(ref["n_val"])) / len(idx)
    tr, va = carve_val(groups[idx], min(frac, cfg.val_fraction), seed=seed)
    return idx[tr], idx[va]


def train_cell(arm: Arm, images: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_idx: np.ndarray,
               videos: np.ndarray, train_cfg: TrainConfig, cfg: EvalConfig, *, start_cap: int | None = None,
               attempts: Sequence[dict] = (), ref: Mapping[str, Any] | None = None,
               val_rows: np.ndarray | None = None, reproduce_only: bool = False) -> dict:
    """Train one arm with the protocol, score the test split, return the cell record.

    Converged protocol: train with a first cap (``start_cap``, else ``max_epochs`` passes); while
    the run hits its cap with val AUC still rising, retrain from the same seed with the cap
    ×``grow`` up to the ceiling; the cell keeps the attempt with the best val AUC
    (:func:`kept_attempt`) and tests only that model. ``attempts`` carries earlier runs of this
    cell (a resumed escalation); when one of them is the best, it is retrained (same seed and
    cap) to get its model back. ``reproduce_only``: train no new attempt, only that. ``ref``: for
    an RS2 arm, the cell of the budget arm whose samples it matches. ``val_rows``: the shared val
    set (``val_source="split"``) instead of a carve of the arm."""
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.models.predict import predict
    from edgedistal.models.train import fit

    idx = arm.rows
    seed = cfg.seed_offset + arm.seed
    tcfg = dataclasses.replace(train_cfg, seed=seed)
    epoch_rows = None
    if arm.kind == "rs2":
        if ref is None:
            raise EdgedistalError(f"{arm.key}: RS2 needs its budget arm's finished cell")
        epoch_rows = int(ref["n_train"])
    tr_idx, va_idx = _cell_rows(arm, groups, cfg, ref, val_rows, seed)
    if cfg.protocol == "converged":
        tcfg = dataclasses.replace(tcfg, patience=cfg.patience, eval_every=0)
    else:  # fixed compute: no validation, no early stop, final weights
        tcfg = dataclasses.replace(tcfg, patience=0)
        if cfg.protocol == "epochs" and ref is None:
            tcfg = dataclasses.replace(tcfg, max_steps=None)
    sort_tr = np.sort(tr_idx)  # sorted reads are much faster on a memory-mapped cache
    x_tr, y_tr = np.asarray(images[sort_tr]), labels[sort_tr]
    x_va = np.asarray(images[np.sort(va_idx)]) if len(va_idx) else None
    y_va = labels[np.sort(va_idx)] if len(va_idx) else None

    if ref is not None:  # RS2: exactly the steps (hence samples) of its budget arm, best val weights
        cap, ceiling = int(ref["steps"]), int(ref["steps"])
        tcfg = dataclasses.replace(tcfg, patience=0)
    elif cfg.protocol == "converged":
        cap = start_cap or converged_steps(len(tr_idx), tcfg.batch_size, cfg, full=arm.kind == "full")
        ceiling = max(cap, ceiling_steps(len(tr_idx), tcfg.batch_size, cfg))
    else:
        cap = ceiling = tcfg.max_steps or 0  # 0: the epochs protocol's passes decide

    def run(max_steps: int) -> Any:
        return fit(x_tr, y_tr, x_va, y_va, dataclasses.replace(tcfg, max_steps=max_steps) if max_steps else tcfg,
                   progress=False, epoch_rows=epoch_rows)

    history, models = list(attempts), {}
    while not reproduce_only:
        res = run(cap)
        history.append({"step_cap": int(cap or res.steps), "steps": int(res.steps), "stopped": res.stopped,
                        "best_val_auc": res.best_val_auc, "val_rise_last_third": val_rise_last_third(res.history),
                        "wall_s": float(res.wall_s)})
        if kept_attempt(history) == len(history) - 1:
            models = {len(history) - 1: res}  # only the best run so far stays in memory
        nxt = next_cap(cap, ceiling, cfg) if _improving(history[-1], cfg) and ref is None else None
        if nxt is None:
            break
        cap = nxt
    k = kept_attempt(history)
    reproduce_s, reproduced = 0.0, None
    if k not in models:  # the best run was trained by an earlier process: the same seed and cap again
        models = {k: run(int(history[k]["step_cap"]))}
        reproduce_s, reproduced = float(models[k].wall_s), models[k].best_val_auc
    res = models[k]
    t0 = time.perf_counter()
    probs, _ = predict(res.model, images[test_idx], device=tcfg.device)
    test_s = time.perf_counter() - t0
    metrics = compute_metrics(labels[test_idx], probs, videos[test_idx])
    improving = _improving(history[-1], cfg)
    # None under a fixed-compute protocol: without val there is nothing to judge convergence by
    converged = None if cfg.protocol != "converged" or ref is not None else not improving
    return {
        "n_train": int(len(tr_idx)), "n_val": int(len(va_idx)),
        "n_real": int((labels[idx] == 0).sum()), "n_fake": int((labels[idx] == 1).sum()),
        "n_groups": int(len(np.unique(groups[idx]))),
        "steps": int(res.steps), "step_cap": int(history[-1]["step_cap"]), "epochs": float(res.epochs),
        "samples_seen": int(res.samples_seen), "wall_s": float(res.wall_s),
        "wall_s_all_attempts": float(sum(a["wall_s"] for a in history)), "kept_attempt": k,
        "reproduce_s": reproduce_s, "reproduced_val_auc": reproduced,
        "ceiling_steps": int(ceiling or res.steps), "attempts": history,
        "images_per_s": float(res.images_per_s), "best_step": int(res.best_step),
        "best_val_auc": None if res.best_val_auc is None else float(res.best_val_auc),
        "val_rise_last_third": history[-1]["val_rise_last_third"], "converged": converged,
        "capped_improving": bool(improving and ref is None), "stopped": res.stopped,
        "train_seed": seed, "val_source": None if not len(va_idx) else "carve" if val_rows is None else "split",
        "val_seed": seed if len(va_idx) and val_rows is None else None, "epoch_rows": epoch_rows,
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


SEED_FIELD = "{seed}"


def method_dir(d: str | Path, seed: int) -> Path:
    """A method's distillation for one paired seed: ``d`` itself, or ``d`` with ``{seed}`` filled
    in when the method was distilled once per seed, so that its own selection variance (seed set,
    k-means start) enters the paired interval instead of one lucky or unlucky subset."""
    s = str(d)
    return Path(s.replace(SEED_FIELD, str(seed))) if SEED_FIELD in s else Path(d)


def as_methods(distilled: str | Path | Mapping[str, str | Path] | Sequence[Any] | None) -> dict[str, Path]:
    """Normalise ``DIR``, ``NAME=DIR`` strings, (name, dir) pairs or a mapping into {name: dir};
    a ``DIR`` holding ``{seed}`` names one distillation per paired seed (checked at seed 0 here)."""
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
        if not method_dir(d, 0).is_dir():
            raise EdgedistalError(f"{method_dir(d, 0)}: distillation folder not found",
                                  "pass the --out folder of `edgedistal distill`")
        name = _valid_name(str(name) if name else method_name(method_dir(d, 0)))
        if name in out:
            raise EdgedistalError(f"two distilled methods are named {name!r}", "name them: --distilled NAME=DIR")
        out[name] = d
    return out


def _method_rows(name: str, ddir: Path, b: float, row_of: pd.Series, pool_set: set[int]) -> np.ndarray:
    ids = subset_at(ddir, b)["sample_id"].astype(str)
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


def method_subsets(methods: Mapping[str, Path], budgets: Sequence[float], seeds_at: Callable[[float], int],
                   row_of: pd.Series, pool_set: set[int]) -> dict[tuple[str, float, int], np.ndarray]:
    """Each method's manifest rows per (method, budget, seed): seed ``s`` reads
    ``method_dir(d, s)``, each folder once per budget; a missing per-seed folder is refused here,
    before any training."""
    read: dict[tuple[Path, float], np.ndarray] = {}
    out: dict[tuple[str, float, int], np.ndarray] = {}
    for m, d in methods.items():
        for b in budgets:
            for s in range(seeds_at(b)):
                key = (method_dir(d, s), b)
                if key not in read:
                    if not key[0].is_dir():
                        raise EdgedistalError(f"{key[0]}: distillation folder of {m} for seed {s} not found",
                                              f"distil it (edgedistal distill --seed {s} -o {key[0]}) "
                                              "or pass fewer --seeds")
                    read[key] = _method_rows(m, key[0], b, row_of, pool_set)
                out[(m, b, s)] = read[key]
    return out


def mean_mixes(subsets: Mapping[tuple[str, float, int], np.ndarray], labels: np.ndarray) -> dict[tuple[str, float], float]:
    """Each (method, budget)'s real share averaged over its seeds: its stratified baseline keeps
    one name, hence one paired arm, across seeds (for one fixed subset, simply its mix)."""
    per: dict[tuple[str, float], list[float]] = {}
    for (m, b, _), rows in subsets.items():
        per.setdefault((m, b), []).append(float((labels[rows] == 0).mean()) if len(rows) else 0.5)
    return {k: float(np.mean(v)) for k, v in per.items()}


def plan_arms(df: pd.DataFrame, pool_rows: np.ndarray, methods: Mapping[str, Path], cfg: EvalConfig) -> list[Arm]:
    """Every model of the evaluation: per seed the full pool, then per budget methods + baselines."""
    labels = df["label"].to_numpy(np.int64)
    groups = df["group"].astype(str).to_numpy()
    row_of = pd.Series(np.arange(len(df)), index=df["sample_id"].astype(str).to_numpy())
    pool_set = set(pool_rows.tolist())
    n_seeds = max([cfg.n_full_seeds()] + [cfg.seeds_at(b) for b in cfg.budgets])
    subsets = method_subsets(methods, cfg.budgets, cfg.seeds_at, row_of, pool_set)
    mix_of = mean_mixes(subsets, labels)
    pool_labels, pool_groups = labels[pool_rows], groups[pool_rows]
    arms: list[Arm] = []
    rs2: list[Arm] = []  # after every other arm: each needs its budget arm's finished cell
    ref_arm = next((a for a in ("random", "balanced") if a in cfg.baselines), None)
    for s in range(n_seeds):
        if cfg.include_full and s < cfg.n_full_seeds():
            arms.append(Arm("full", "full", 1.0, s, pool_rows))
        for b in cfg.budgets:
            if s >= cfg.seeds_at(b):
                continue
            n = int(round(b * len(pool_rows)))
            if n < 2:
                raise EdgedistalError(f"budget {b} is {n} sample(s) of a {len(pool_rows)}-sample pool",
                                      "use larger budgets or a larger pool")
            mixes: dict[str, float] = {}
            for m in methods:
                rows = subsets[(m, b, s)]
                share = float((labels[rows] == 0).mean()) if len(rows) else 0.5
                strat = stratified_name(mix_of[(m, b)])
                mixes.setdefault(strat, round(mix_of[(m, b)], 2))
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
            if "rs2" in cfg.baselines and ref_arm is not None:
                rs2.append(Arm("rs2", "rs2", b, s, pool_rows, {"ref_arm": ref_arm, "epoch_size": n}))
    return arms + rs2


def rs2_ref_key(arm: Arm) -> str:
    """The cell whose samples count an RS2 arm matches: its budget's reference arm, same seed."""
    return f"{arm.extra['ref_arm']}_b{arm.budget:.3f}_s{arm.seed}"


def rs2_fingerprint(base: str, ref: Mapping[str, Any]) -> str:
    """An RS2 cell depends on its reference cell's outcome (steps, train/val sizes) as well."""
    return _digest({"base": base, "ref": ref.get("fingerprint"), "steps": ref.get("steps"),
                    "n_train": ref.get("n_train"), "n_val": ref.get("n_val")})


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

    say = log or log_.info
    cfg = dataclasses.replace(eval_cfg) if eval_cfg is not None else EvalConfig()
    cfg.budgets = tuple(sorted(float(b) for b in cfg.budgets))
    cfg.validate()
    out = Path(out_dir)

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
        methods = {_valid_name(method_name(ddir)): ddir}

    arms = plan_arms(df, pool_rows, methods, cfg)
    labels = df["label"].to_numpy(np.int64)
    groups = df["group"].astype(str).to_numpy()
    videos = df["video"].astype(str).to_numpy()
    sample_ids = df["sample_id"].astype(str).to_numpy()
    recipe = train_fingerprint(train_cfg, cfg)
    val_rows = shared_val_rows(df, cfg.val_max) if cfg.protocol == "converged" and cfg.val_source == "split" else None
    data_digest = manifest_digest(df, np.concatenate([pool_rows, test_rows, *([] if val_rows is None else [val_rows])]))
    prints = {a.key: cell_fingerprint(full_recipe(recipe, cfg) if a.kind == "full" else recipe, data_digest, a,
                                      sample_ids) for a in arms}

    (out / "cells").mkdir(parents=True, exist_ok=True)  # after every check: a refused run leaves no folder
    write_json_atomic(out / "eval_config.json", {
        "eval": asdict(cfg), "train": asdict(train_cfg),
        "methods": {m: str(d.resolve()) for m, d in methods.items()},
        "distilled_dir": str(method_dir(next(iter(methods.values())), 0).resolve()),
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)),
        "test_groups": int(len(np.unique(groups[test_rows]))), "split_seed": split_seed,
        "val_size": None if val_rows is None else int(len(val_rows)),
        "data_digest": data_digest,
    })

    if shard is None or shard[0] == 0:
        write_pick_sheets(df, arms, out / "figures")
    book = _Cells(out / "cells", prints, cfg, train_cfg)
    todo, status = book.todo(arms, resume, shard, say)
    if todo and images is None:
        images = (image_loader or _default_loader)(manifest, train_cfg.image_size, progress)
    data = _ArmData(images, labels, groups, test_rows, videos, len(pool_rows), val_rows)
    skipped = book.train(todo, data, time_budget_s, progress, say)
    done = book.finished(arms)
    cells = pd.DataFrame(done)
    summary = summarise(cells, cfg.budgets)
    n_fake = int(labels[test_rows].sum())
    flag_chance(summary, n_fake, len(test_rows) - n_fake)
    summary.update({
        "protocol": cfg.protocol, "random_mode": cfg.random_mode, "methods": {m: str(d) for m, d in methods.items()},
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)), "skipped_cells": skipped,
        "planned_cells": len(arms), "finished_cells": len(done),
        "resume": {"reused": status["ok"], "stale_retrained": status["stale"], "corrupt_retrained": status["corrupt"],
                   "escalated": status["escalate"], "reproduced": status["reproduce"]},
    })
    if len(done) < len(arms):
        summary["conclusion"] += f" (incomplete: {len(done)}/{len(arms)} models finished)"
    if not cells.empty:
        write_parquet_atomic(cells.drop(columns=["metrics"], errors="ignore"), out / "cells.parquet")
    write_json_atomic(out / "summary.json", summary)
    return EvalResult(cells, summary, out)


@dataclass
class _ArmData:
    """What every arm trains and tests on: the images and columns of the whole manifest."""

    images: np.ndarray | None
    labels: np.ndarray
    groups: np.ndarray
    test_rows: np.ndarray
    videos: np.ndarray
    pool_size: int
    val_rows: np.ndarray | None = None  # the shared val set (val_source="split")


@dataclass
class _Cells:
    """The plan's cells on disk (``cells/<key>.json``): which are finished under today's
    fingerprints, which escalate, and training the rest."""

    cell_dir: Path
    prints: dict[str, str]
    cfg: EvalConfig
    train_cfg: TrainConfig

    def ref_of(self, a: Arm) -> dict | None:
        """An RS2 arm's reference cell, when finished with a matching fingerprint."""
        key = rs2_ref_key(a)
        return read_cell(self.cell_dir / f"{key}.json", self.prints[key])[0] if key in self.prints else None

    def fingerprint(self, a: Arm) -> str | None:
        if a.kind != "rs2":
            return self.prints[a.key]
        ref = self.ref_of(a)
        return None if ref is None else rs2_fingerprint(self.prints[a.key], ref)

    def escalates(self, rec: Mapping[str, Any]) -> bool:
        return (self.cfg.protocol == "converged" and rec.get("kind") != "rs2" and capped(rec)
                and int(rec.get("step_cap") or 0) < ceiling_steps(int(rec["n_train"]), self.train_cfg.batch_size,
                                                                 self.cfg))

    def state(self, a: Arm) -> tuple[dict | None, str]:
        """A finished cell is reused unless it is capped_improving below today's ceiling: then
        it escalates (retrains with a larger cap, its earlier runs kept in ``attempts``); or
        unless it predates kept attempts and kept a worse run than its best: then that run is
        retrained (``reproduce``)."""
        if a.kind == "rs2":
            ref = self.ref_of(a)
            if ref is not None and (self.escalates(ref) or needs_reproduce(ref)):  # its reference changes
                return None, "stale" if (self.cell_dir / f"{a.key}.json").exists() else "missing"
        fp = self.fingerprint(a)
        if fp is None:  # an RS2 arm whose reference must train first: an old cell of it is stale
            return None, "stale" if (self.cell_dir / f"{a.key}.json").exists() else "missing"
        rec, st = read_cell(self.cell_dir / f"{a.key}.json", fp)
        if st == "ok" and a.kind != "rs2" and self.escalates(rec):
            return rec, "escalate"
        if st == "ok" and a.kind != "rs2" and needs_reproduce(rec):
            return rec, "reproduce"
        return rec, st

    def todo(self, arms: Sequence[Arm], resume: bool, shard: tuple[int, int] | None,
             say: Callable[[str], None]) -> tuple[list[tuple[Arm, dict | None, str]], dict[str, int]]:
        """The arms this process trains, each with the cell an escalation or reproduction continues
        and its status (decided here once), and the counts."""
        status: dict[str, int] = {"ok": 0, "missing": 0, "stale": 0, "corrupt": 0, "escalate": 0,
                                 "reproduce": 0}
        todo: list[tuple[Arm, dict | None, str]] = []
        for a in arms:
            rec, st = self.state(a) if resume else (None, "missing")
            status[st] += 1
            if st == "corrupt":
                say(f"{self.cell_dir / a.key}.json: unreadable cell, retraining it")
            if st != "ok":
                todo.append((a, rec if st in ("escalate", "reproduce") else None, st))
        if shard is not None:
            mine = set(self.shares(todo, shard[1])[shard[0]])
            todo = [t for t in todo if t[0].key in mine]
        if status["stale"]:
            say(f"{status['stale']} cell(s) in {self.cell_dir} were trained with other settings or data: "
                "retraining them")
        if status["ok"]:
            say(f"reusing {status['ok']} finished cell(s) with matching fingerprints")
        if status["escalate"]:
            say(f"{status['escalate']} finished cell(s) hit their step cap still improving: retraining them "
                f"with a larger cap (ceiling {self.cfg.ceiling_epochs:g} passes)")
        if status["reproduce"]:
            say(f"{status['reproduce']} finished cell(s) kept a retraining that ended below an earlier "
                "run on val: retraining that run (same seed and cap) to keep its model")
        return todo, status

    def next_cap(self, prev: Mapping[str, Any]) -> int | None:
        """The cap an escalating cell retrains with (None at its ceiling)."""
        return next_cap(int(prev["step_cap"]), ceiling_steps(int(prev["n_train"]), self.train_cfg.batch_size,
                                                             self.cfg), self.cfg)

    def cost(self, a: Arm, prev: Mapping[str, Any] | None, status: str) -> int:
        """A cell's expected steps: its next cap (the full arm's own first cap; an escalation's
        larger one; a reproduction's own), or its step count under a fixed-compute protocol."""
        if prev is not None:
            return (self.next_cap(prev) if status == "escalate" else None) or int(prev.get("step_cap") or 0)
        n = int(a.extra.get("epoch_size") or len(a.rows))
        if self.cfg.protocol != "converged":
            return self.train_cfg.max_steps or n
        return converged_steps(n, self.train_cfg.batch_size, self.cfg, full=a.kind == "full")

    def shares(self, todo: Sequence[tuple[Arm, Mapping[str, Any] | None, str]], n: int) -> list[list[str]]:
        """Split the cells to train (:meth:`todo`'s list) over ``n`` workers, longest first to the
        least loaded (LPT): every worker computes the same split, and the full arm no longer shares
        a worker with a third of the rest because of where it stands in the plan."""
        costs = [self.cost(*t) for t in todo]
        load, keys = [0] * n, [[] for _ in range(n)]
        for i in sorted(range(len(todo)), key=lambda i: (-costs[i], i)):
            k = min(range(n), key=lambda j: (load[j], j))
            load[k] += costs[i]
            keys[k].append(todo[i][0].key)
        return keys

    def train(self, todo: list[tuple[Arm, dict | None, str]], data: _ArmData, time_budget_s: float | None,
              progress: bool, say: Callable[[str], None]) -> list[str]:
        """Train each arm of ``todo`` into its cell; returns the keys left for a re-run."""
        from edgedistal.utils.progress import track

        t_start = time.perf_counter()
        skipped: list[str] = []
        for a, prev, st in track(todo, total=len(todo), description="evaluating") if progress else todo:
            if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
                skipped.append(a.key)
                continue
            ref = self.ref_of(a) if a.kind == "rs2" else None
            if a.kind == "rs2" and ref is None:  # its budget arm is in another shard or was skipped
                skipped.append(a.key)
                say(f"  {a.key}: waiting for {rs2_ref_key(a)} (a re-run trains it)")
                continue
            if a.kind == "rs2" and read_cell(self.cell_dir / f"{a.key}.json", self.fingerprint(a))[1] == "ok":
                continue  # its reference was retrained to the same outcome: the old RS2 cell still holds
            self._train_one(a, prev, st, ref, data, say)
        return skipped

    def _train_one(self, a: Arm, prev: dict | None, status: str, ref: dict | None, data: _ArmData,
                   say: Callable[[str], None]) -> None:
        """``status`` is :meth:`state`'s: ``escalate`` and ``reproduce`` continue ``prev``."""
        cfg, train_cfg = self.cfg, self.train_cfg
        start_cap, reproduce_only = None, status == "reproduce"
        if prev is not None and status == "escalate":
            start_cap = self.next_cap(prev)
        rec = train_cell(a, data.images, data.labels, data.groups, data.test_rows, data.videos, train_cfg, cfg,
                         start_cap=start_cap,
                         attempts=(prev or {}).get("attempts") or ([_attempt_of(prev)] if prev else []), ref=ref,
                         val_rows=data.val_rows, reproduce_only=reproduce_only)
        rec.update({"cell": a.key, "arm": a.arm, "kind": a.kind, "budget": a.budget, "seed": a.seed,
                    "protocol": cfg.protocol, "budget_actual": len(a.rows) / data.pool_size,
                    "fingerprint": self.fingerprint(a), **a.extra})
        if a.kind == "rs2":
            rec["budget_actual"] = a.budget
        write_json_atomic(self.cell_dir / f"{a.key}.json", rec)
        say(f"  {a.key}: n={rec['n_train']} steps={rec['steps']}/{rec['step_cap']} {rec['wall_s']:.1f}s "
            f"test AUC={rec['frame_auc']:.4f}{' (capped_improving)' if rec['capped_improving'] else ''}")

    def finished(self, arms: Sequence[Arm]) -> list[dict]:
        """The finished cells of ``arms`` under today's fingerprints, in plan order."""
        done = []
        for a in arms:
            fp = self.fingerprint(a)
            rec = read_cell(self.cell_dir / f"{a.key}.json", fp)[0] if fp is not None else None
            if rec is not None:
                done.append(rec)
        return done


def write_pick_sheets(df: pd.DataFrame, arms: Sequence[Arm], folder: Path) -> list[Path]:
    """Per budget, a contact sheet of what each method picked next to balanced random (seed 0)."""
    from edgedistal.pipeline.contact_sheet import picks_sheet

    if "path" not in df:
        return []
    written = []
    for b in sorted({a.budget for a in arms if a.kind == "distilled"}):
        at = {a.arm: a.rows for a in arms if a.budget == b and a.seed == 0 and a.kind == "distilled"}
        bal = [a.rows for a in arms if a.budget == b and a.seed == 0 and a.arm == "balanced"]
        if bal:
            at["balanced random"] = bal[0]
        try:
            written.append(picks_sheet(df, at, folder / f"picks_b{b:.3f}.png"))
        except (OSError, ValueError) as exc:  # a sheet is a courtesy: never fail the evaluation
            log_.warning("contact sheet at budget %s not written: %s", b, exc)
    return written


def _attempt_of(rec: Mapping[str, Any]) -> dict:
    """A cell written before escalation existed, as the first entry of ``attempts``."""
    return {k: rec.get(k) for k in ("step_cap", "steps", "stopped", "best_val_auc", "val_rise_last_third", "wall_s")}


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
