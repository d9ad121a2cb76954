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
  With ``escalate="group"`` (default) the paired arms of a budget and seed climb together: when one
  earns a larger cap, every arm of the group trains it too (:func:`group_level`).
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
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
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
from edgedistal.pipeline.cell_training import (  # noqa: F401  (re-exported)
    METRIC_NAMES,
    CellRun,
    attempts_of,
    cap_sequence,
    ceiling_steps,
    climb,
    converged_steps,
    group_level,
    kept_attempt,
    missing_caps,
    needs_reproduce,
    next_cap,
    scores_digest,
    train_cell,
    val_rise_last_third,
)
from edgedistal.pipeline.compare import (  # noqa: F401
    TestScores,
    aubc,
    capped,
    flag_chance,
    gain_over_chance,
    summarise,
)
from edgedistal.pipeline.eval_config import (  # noqa: F401  (re-exported: the evaluation's public names)
    BASELINES,
    DEFAULT_BUDGETS,
    ESCALATE,
    PROTOCOLS,
    RESERVED,
    VAL_SOURCES,
    Arm,
    EvalConfig,
    auto_seeds,
    parse_seeds,
)
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

if TYPE_CHECKING:  # distill imports evaluate's baselines; the type only
    from edgedistal.pipeline.distill import DistillConfig

log_ = logging.getLogger(__name__)

#: Training options that change where a model runs, not what it learns: not fingerprinted.
_NOT_FINGERPRINTED = ("device", "num_threads", "time_budget_s", "compile", "device_data_max_frac")


@dataclass
class EvalResult:
    cells: pd.DataFrame  # one row per (arm, budget, seed)
    summary: dict
    out_dir: Path


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


def holdout_val_rows(df: pd.DataFrame, val_rows: np.ndarray) -> np.ndarray:
    """The val split's rows of groups outside the shared val set: no arm early-stops on them, so
    a kept model's AUC there is an unbiased val reading (its AUC on the shared set is the maximum
    of a noisy curve, the point it was stopped at)."""
    rows = np.flatnonzero((df["split"] == "val").to_numpy())
    groups = df["group"].astype(str).to_numpy()
    rows = rows[~np.isin(groups[rows], np.unique(groups[val_rows]))]
    return rows if len(np.unique(df["label"].to_numpy()[rows])) == 2 else rows[:0]


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


def scores_path(cell_dir: Path, key: str) -> Path:
    """Where a cell's kept model keeps its test scores (float32, aligned with the test rows)."""
    return cell_dir / f"{key}.scores.npy"


def read_scores(cell_dir: Path, rec: Mapping[str, Any], n_test: int) -> np.ndarray | None:
    """A cell's test scores, or None when absent (older cells), torn, or not the kept model's
    (the digest in the record decides). Plain arrays only: nothing is unpickled."""
    path, want = scores_path(cell_dir, str(rec.get("cell"))), rec.get("test_scores_sha")
    if not want or not path.exists():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None
    if arr.shape != (n_test,) or scores_digest(arr) != want:
        return None
    return arr


def write_scores(cell_dir: Path, key: str, scores: np.ndarray) -> None:
    with atomic_path(scores_path(cell_dir, key)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(scores, np.float32))


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
    start no new run after this many seconds (a re-run finishes them). ``shard=(k, n)``
    trains only the k-th of ``n`` longest-first shares of whole groups (:meth:`_Cells.shares`),
    so ``n`` processes can share the CPU or a GPU.
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
    holdout = holdout_val_rows(df, val_rows) if val_rows is not None else None
    book = _Cells(out / "cells", prints, cfg, train_cfg, holdout is not None and len(holdout) > 0)
    todo, status = book.todo(arms, resume, shard, say)
    if todo and images is None:
        images = (image_loader or _default_loader)(manifest, train_cfg.image_size, progress)
    data = _ArmData(images, labels, groups, test_rows, videos, len(pool_rows), val_rows, holdout)
    skipped = book.train(todo, data, time_budget_s, progress, say)
    done = book.finished(arms)
    cells = pd.DataFrame(done)
    summary = _summary(cells, cfg, labels, groups, test_rows, out / "cells")
    summary.update({
        "protocol": cfg.protocol, "random_mode": cfg.random_mode, "methods": {m: str(d) for m, d in methods.items()},
        "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)), "skipped_cells": skipped,
        "planned_cells": len(arms), "finished_cells": len(done),
        "resume": {"reused": status["ok"], "stale_retrained": status["stale"], "corrupt_retrained": status["corrupt"],
                   "escalated": status["escalate"], "reproduced": status["reproduce"],
                   "rescored": status["rescore"]},
    })
    summary["conclusion"] += _incomplete(len(done), len(arms), skipped)
    if not cells.empty:
        write_parquet_atomic(cells.drop(columns=["metrics"], errors="ignore"), out / "cells.parquet")
    write_json_atomic(out / "summary.json", summary)
    return EvalResult(cells, summary, out)


def _summary(cells: pd.DataFrame, cfg: EvalConfig, labels: np.ndarray, groups: np.ndarray, test_rows: np.ndarray,
             cell_dir: Path) -> dict:
    """The curves and verdicts of the finished cells (with the test-groups bootstrap where their
    test scores are kept), models at chance flagged."""
    scores = TestScores(labels[test_rows], groups[test_rows], lambda rec: read_scores(cell_dir, rec, len(test_rows)))
    summary = summarise(cells, cfg.budgets, scores=scores)
    n_fake = int(labels[test_rows].sum())
    flag_chance(summary, n_fake, len(test_rows) - n_fake, cells=cells)
    return summary


def _incomplete(done: int, planned: int, skipped: Sequence[str]) -> str:
    """What the conclusion adds when the run stopped early ('' when it did not)."""
    if done < planned:
        return f" (incomplete: {done}/{planned} models finished)"
    if skipped:  # every cell written, but a group stopped mid-climb: its arms stand at different caps
        return f" (incomplete: {len(skipped)} model(s) still to climb; re-run to finish)"
    return ""


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
    holdout_rows: np.ndarray | None = None  # val rows of other groups, never stopped on (holdout_val_rows)


@dataclass
class _Cells:
    """The plan's cells on disk (``cells/<key>.json``): which are finished under today's
    fingerprints, which must train (missing, stale, or below the caps their group climbs to), and
    training them group by group (:meth:`group_of`), each attempt written as it finishes."""

    cell_dir: Path
    prints: dict[str, str]
    cfg: EvalConfig
    train_cfg: TrainConfig
    holdout: bool = False  # kept models are also scored on the val rows no arm stopped on

    def ref_of(self, a: Arm) -> dict | None:
        """An RS2 arm's reference cell, when finished with a matching fingerprint."""
        key = rs2_ref_key(a)
        return read_cell(self.cell_dir / f"{key}.json", self.prints[key])[0] if key in self.prints else None

    def fingerprint(self, a: Arm) -> str | None:
        if a.kind != "rs2":
            return self.prints[a.key]
        ref = self.ref_of(a)
        return None if ref is None else rs2_fingerprint(self.prints[a.key], ref)

    def group_of(self, a: Arm) -> tuple:
        """The cells that climb the caps together: the paired arms of one budget and seed (each arm
        alone with ``escalate="cell"``; the full arm always alone). RS2 trains after its reference."""
        if a.kind == "full":
            return ("full", a.seed)
        if self.cfg.escalate == "cell":
            return (rs2_ref_key(a) if a.kind == "rs2" else a.key,)
        return (round(a.budget, 9), a.seed)

    def caps_of(self, a: Arm, rec: Mapping[str, Any]) -> list[int]:
        """A finished cell's cap sequence (from its train size)."""
        n, bs = int(rec["n_train"]), self.train_cfg.batch_size
        return cap_sequence(converged_steps(n, bs, self.cfg, full=a.kind == "full"), ceiling_steps(n, bs, self.cfg),
                            self.cfg)

    def state(self, a: Arm) -> tuple[dict | None, str]:
        """``ok``, ``missing``, ``stale``, ``corrupt``, ``reproduce`` (a cell written before cells
        kept their best attempt, which kept a worse run than its best: that run is retrained), or
        ``rescore`` (with ``EvalConfig.rescore``, a cell whose kept model left no test scores, or
        no holdout val reading where there are holdout rows)."""
        if a.kind == "rs2":
            ref = self.ref_of(a)
            if ref is not None and needs_reproduce(ref):  # its reference changes
                return None, "stale" if (self.cell_dir / f"{a.key}.json").exists() else "missing"
        fp = self.fingerprint(a)
        if fp is None:  # an RS2 arm whose reference must train first: an old cell of it is stale
            return None, "stale" if (self.cell_dir / f"{a.key}.json").exists() else "missing"
        rec, st = read_cell(self.cell_dir / f"{a.key}.json", fp)
        if st == "ok" and a.kind != "rs2" and needs_reproduce(rec):
            return rec, "reproduce"
        if st == "ok" and self.cfg.rescore and a.kind != "rs2" and (
                not (rec.get("test_scores_sha") and scores_path(self.cell_dir, a.key).exists())
                or (self.holdout and rec.get("holdout_val_auc") is None)):
            return rec, "rescore"
        return rec, st

    def _group_states(self, members: Sequence[Arm], states: Mapping[str, tuple[dict | None, str]]
                      ) -> list[tuple[Arm, dict | None, str]]:
        """A group's cells with their status: a finished cell below the cap level its group climbs
        to (:func:`group_level`) ``escalate``s, its earlier runs kept in ``attempts``."""
        main = [(a, *states[a.key]) for a in members if a.kind != "rs2"]
        level = 0
        if self.cfg.protocol == "converged":
            level = group_level([(attempts_of(rec), self.caps_of(a, rec)) for a, rec, st in main
                                 if st in ("ok", "reproduce", "rescore")], self.cfg)
        out = []
        for a in members:
            rec, st = states[a.key]
            if st == "ok" and a.kind != "rs2" and level and missing_caps(attempts_of(rec), self.caps_of(a, rec), level):
                st = "escalate"
            out.append((a, rec if st in ("ok", "escalate", "reproduce", "rescore") else None, st))
        return out

    def todo(self, arms: Sequence[Arm], resume: bool, shard: tuple[int, int] | None,
             say: Callable[[str], None]) -> tuple[list[tuple[Arm, dict | None, str]], dict[str, int]]:
        """The arms this process trains, whole groups with the cell each continues and its status
        (decided here once; a group's finished cells come along as ``ok``), and the counts."""
        states = {a.key: self.state(a) if resume else (None, "missing") for a in arms}
        groups: dict[tuple, list[Arm]] = {}
        for a in arms:
            groups.setdefault(self.group_of(a), []).append(a)
        status: dict[str, int] = {"ok": 0, "missing": 0, "stale": 0, "corrupt": 0, "escalate": 0,
                                 "reproduce": 0, "rescore": 0}
        todo: list[tuple[Arm, dict | None, str]] = []
        for members in groups.values():
            entries = self._group_states(members, states)
            for a, _, st in entries:
                status[st] += 1
                if st == "corrupt":
                    say(f"{self.cell_dir / a.key}.json: unreadable cell, retraining it")
            if any(st != "ok" for *_, st in entries):
                todo.extend(entries)
        if shard is not None:
            mine = set(self.shares(todo, shard[1])[shard[0]])
            todo = [t for t in todo if t[0].key in mine]
        if status["stale"]:
            say(f"{status['stale']} cell(s) in {self.cell_dir} were trained with other settings or data: "
                "retraining them")
        if status["ok"]:
            say(f"reusing {status['ok']} finished cell(s) with matching fingerprints")
        if status["escalate"]:
            who = "their group" if self.cfg.escalate == "group" else "they"
            say(f"{status['escalate']} finished cell(s) are retrained with a larger cap: {who} hit the step cap "
                f"still improving (ceiling {self.cfg.ceiling_epochs:g} passes)")
        if status["reproduce"]:
            say(f"{status['reproduce']} finished cell(s) kept a retraining that ended below an earlier "
                "run on val: retraining that run (same seed and cap) to keep its model")
        if status["rescore"]:
            say(f"{status['rescore']} finished cell(s) kept no test scores: retraining each one's kept run "
                "(same seed and cap) to score the test set")
        return todo, status

    def cost(self, a: Arm, prev: Mapping[str, Any] | None, status: str) -> int:
        """A cell's expected steps: its next cap (the full arm's own first cap; an escalation's
        larger one; a reproduction's own), nothing for a finished one, or its step count under a
        fixed-compute protocol."""
        if status == "ok":
            return 0
        if prev is not None:
            caps = self.caps_of(a, prev)
            reach = int(prev.get("step_cap") or 0)
            nxt = next((c for c in caps if c > reach), None) if status == "escalate" else None
            return nxt or reach
        n = int(a.extra.get("epoch_size") or len(a.rows))
        if self.cfg.protocol != "converged":
            return self.train_cfg.max_steps or n
        return converged_steps(n, self.train_cfg.batch_size, self.cfg, full=a.kind == "full")

    def shares(self, todo: Sequence[tuple[Arm, Mapping[str, Any] | None, str]], n: int) -> list[list[str]]:
        """Split the cells to train (:meth:`todo`'s list) over ``n`` workers, whole groups, longest
        first to the least loaded (LPT): every worker computes the same split, and the full arm no
        longer shares a worker with a third of the rest because of where it stands in the plan."""
        groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(todo):
            groups.setdefault(self.group_of(t[0]), []).append(i)
        costs = {g: sum(self.cost(*todo[i]) for i in idx) for g, idx in groups.items()}
        load, keys = [0] * n, [[] for _ in range(n)]
        order = list(groups)
        for g in sorted(order, key=lambda g: (-costs[g], order.index(g))):
            k = min(range(n), key=lambda j: (load[j], j))
            load[k] += costs[g]
            keys[k].extend(todo[i][0].key for i in groups[g])
        return keys

    def train(self, todo: list[tuple[Arm, dict | None, str]], data: _ArmData, time_budget_s: float | None,
              progress: bool, say: Callable[[str], None]) -> list[str]:
        """Train ``todo`` group by group; returns the keys left for a re-run."""
        from edgedistal.utils.progress import track

        t_start = time.perf_counter()

        def over() -> bool:
            return time_budget_s is not None and time.perf_counter() - t_start > time_budget_s

        groups: dict[tuple, list[tuple[Arm, dict | None, str]]] = {}
        for t in todo:
            groups.setdefault(self.group_of(t[0]), []).append(t)
        skipped: list[str] = []
        for entries in track(list(groups.values()), description="evaluating") if progress else groups.values():
            skipped += self._train_group(entries, data, over, say)
        return skipped

    def _train_group(self, entries: Sequence[tuple[Arm, dict | None, str]], data: _ArmData,
                     over: Callable[[], bool], say: Callable[[str], None]) -> list[str]:
        """Climb a group's caps level by level: at each level every arm trains the caps it lacks,
        then the level rises while an arm at it still rose (:func:`group_level`). Every attempt is
        written as it ends, so a stopped run resumes where it was. RS2 arms train last."""
        runs = [(a, st, CellRun(a, data.images, data.labels, data.groups, data.test_rows, data.videos,
                                self.train_cfg, self.cfg, prev=prev, val_rows=data.val_rows,
                                rescore=st == "rescore", holdout_rows=data.holdout_rows))
                for a, prev, st in entries if a.kind != "rs2"]
        left = climb([r for *_, r in runs], self.cfg, lambda r: self._write(r.arm, r, data, say), over,
                     lambda r, cap: say(f"  {r.arm.key}: training {len(r.arm.rows)} rows, cap {cap} steps ..."))
        if left:
            return [r.arm.key for r in left] + [e[0].key for e in entries if e[0].kind == "rs2"]
        skipped = []
        for a, st, r in runs:
            if st in ("reproduce", "rescore") and not r.trained:
                if over():
                    skipped.append(a.key)
                    continue
                self._write(a, r, data, say)
        for a, *_ in (e for e in entries if e[0].kind == "rs2"):
            ref = self.ref_of(a)
            if over() or ref is None:  # over time, or its budget arm was skipped
                skipped.append(a.key)
                if ref is None:
                    say(f"  {a.key}: waiting for {rs2_ref_key(a)} (a re-run trains it)")
                continue
            if read_cell(self.cell_dir / f"{a.key}.json", self.fingerprint(a))[1] == "ok":
                continue  # its reference was retrained to the same outcome: the old RS2 cell still holds
            r = CellRun(a, data.images, data.labels, data.groups, data.test_rows, data.videos, self.train_cfg,
                        self.cfg, ref=ref, val_rows=data.val_rows, holdout_rows=data.holdout_rows)
            r.attempt(r.first)
            self._write(a, r, data, say)
        return skipped

    def _write(self, a: Arm, run: CellRun, data: _ArmData, say: Callable[[str], None]) -> None:
        """Write the cell as it stands after its latest run (atomically: a stop never leaves half a cell)."""
        rec = run.record()
        rec.update({"cell": a.key, "arm": a.arm, "kind": a.kind, "budget": a.budget, "seed": a.seed,
                    "protocol": self.cfg.protocol, "budget_actual": len(a.rows) / data.pool_size,
                    "fingerprint": self.fingerprint(a), **a.extra})
        if a.kind == "rs2":
            rec["budget_actual"] = a.budget
        if run.test_scores is not None:  # before the record that names them
            write_scores(self.cell_dir, a.key, run.test_scores)
        was = rec.get("rescored_from_auc")
        if was is not None and abs(was - rec["frame_auc"]) > 1e-6:
            say(f"  {a.key}: rescoring did not reproduce the recorded test AUC ({was:.4f} → "
                f"{rec['frame_auc']:.4f}); the cell now holds the retrained run")
        write_json_atomic(self.cell_dir / f"{a.key}.json", rec)
        run.prev = rec
        last = run.history[-1] if run.history else {}
        say(f"  {a.key}: n={rec['n_train']} cap={last.get('step_cap')} kept {rec['steps']}/"
            f"{run.history[rec['kept_attempt']]['step_cap'] if run.history else rec['step_cap']} steps "
            f"{rec['wall_s']:.1f}s test AUC={rec['frame_auc']:.4f}{' (capped_improving)' if rec['capped_improving'] else ''}")

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
