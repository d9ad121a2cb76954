"""The `distill` output folder: its one reader and writer.

A run folder holds ``distilled.parquet`` (+ ``.csv``: the picks in pick order, with ``round`` and
``rank``), ``milestones/budget_<b>.parquet`` (the subset at each milestone budget),
``rounds.parquet`` (+ ``.csv``), ``pool_scores.parquet`` and ``embeddings.npy`` (every pool row:
its last scores, where it landed and why), ``subset/`` (``--materialise``: the picked files in the
source layout) and, written last, ``config.json`` (the run's summary: a folder with it is finished).
The drivers (:mod:`edgedistal.pipeline.distill`, :mod:`edgedistal.pipeline.distill_labelled`) write
through :func:`write_picks`, :func:`write_pool_scores` and :func:`write_summary`; `evaluate`,
`report`, `compare`, `train --distilled` and int8 calibration read through the functions below.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.utils import safepath
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

CONFIG_FILE = "config.json"
DISTILLED_FILE = "distilled.parquet"
DISTILLED_CSV = "distilled.csv"
ROUNDS_FILE = "rounds.parquet"
ROUNDS_CSV = "rounds.csv"
POOL_SCORES_FILE = "pool_scores.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
MILESTONES_DIR = "milestones"
SUBSET_DIR = "subset"
MATERIALISE = ("none", "symlink", "hardlink", "copy")


@dataclass
class DistillResult:
    manifest: Manifest  # the distilled rows, pick order, with round and rank columns
    rounds: pd.DataFrame
    out_dir: Path
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DistillSummary:
    """What readers take from ``config.json`` (``None``: not recorded by the run that wrote it)."""

    mode: str | None = None
    strategy: str | None = None
    seed_strategy: str | None = None
    pool: int | None = None
    selected: int | None = None
    seed_size: int | None = None  # the run's seed-set count (0: labelled mode)
    seed_setting: float | None = None  # the configured --seed-size (fraction or count)
    targets: tuple[int, ...] = ()
    groups_covered: int | None = None
    groups_in_pool: int | None = None
    stop_reason: str | None = None
    final_val_auc: float | None = None
    cost: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillSummary:
        cfg = d.get("config") or {}
        return cls(mode=d.get("mode"), strategy=cfg.get("strategy") or d.get("strategy"),
                   seed_strategy=cfg.get("seed_strategy"), pool=d.get("pool"), selected=d.get("selected"),
                   seed_size=d.get("seed_size"), seed_setting=cfg.get("seed_size"), targets=tuple(d.get("targets") or ()),
                   groups_covered=d.get("groups_covered"), groups_in_pool=d.get("groups_in_pool"),
                   stop_reason=d.get("stop_reason"), final_val_auc=d.get("final_val_auc"),
                   cost=dict(d.get("cost") or {}))


# -- paths ------------------------------------------------------------------------------------
def milestone_path(out_dir: str | os.PathLike[str], frac: float) -> Path:
    return Path(out_dir) / MILESTONES_DIR / f"budget_{frac:.3f}.parquet"


def is_distill_dir(d: str | os.PathLike[str]) -> bool:
    """Whether ``d`` holds a distillation (finished, or with its rounds so far)."""
    return (Path(d) / DISTILLED_FILE).exists() or (Path(d) / ROUNDS_FILE).exists()


def is_finished(d: str | os.PathLike[str]) -> bool:
    return (Path(d) / CONFIG_FILE).exists()


def anchor_dir(anchor: str | os.PathLike[str]) -> Path:
    """The folder an anchor names: a checkpoint or parquet (an existing file, or any path with a
    suffix) → its parent; a folder → itself. Shared by the look-ups that search beside outputs."""
    a = Path(anchor)
    return a.parent if a.is_file() or a.suffix else a


def find_distilled(*anchors: str | os.PathLike[str] | None) -> Path | None:
    """A distillation output at or next to ``anchors``: ``A/distilled.parquet``,
    ``A/distilled/distilled.parquet`` or ``A/../distilled/distilled.parquet`` (first found)."""
    for a in anchors:
        if a is None:
            continue
        base = anchor_dir(a)
        for cand in (base / DISTILLED_FILE, base / "distilled" / DISTILLED_FILE,
                     base.parent / "distilled" / DISTILLED_FILE):
            if cand.is_file():
                return cand
    return None


def distilled_manifest(path: str | os.PathLike[str]) -> Path:
    """A `distill` output folder (``--calib-distilled DIR``, ``train --distilled``) or the parquet
    itself → the parquet."""
    p = Path(path)
    target = p / DISTILLED_FILE if p.is_dir() else p
    if not target.is_file():
        raise EdgedistalError(f"{target}: no distilled manifest here",
                              "pass the folder `edgedistal distill --out` wrote (it holds distilled.parquet)")
    return target


# -- writing ----------------------------------------------------------------------------------
def write_picks(out: Path, dist: Manifest, rounds: pd.DataFrame) -> None:
    """``distilled.parquet`` / ``.csv`` and the round log ``rounds.parquet`` / ``.csv``."""
    dist.save(out / DISTILLED_FILE)
    dist.save(out / DISTILLED_CSV)
    with atomic_path(out / ROUNDS_FILE) as tmp:
        rounds.to_parquet(tmp, index=False)
    with atomic_path(out / ROUNDS_CSV) as tmp:
        rounds.to_csv(tmp, index=False)


def write_pool_scores(out: Path, table: dict[str, Any], embeddings: np.ndarray) -> None:
    """``embeddings.npy`` (float32) and ``pool_scores.parquet`` (one row per pool sample)."""
    with atomic_path(out / EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as fh:  # a full disk names the file
        np.save(fh, np.asarray(embeddings, np.float32))
    with atomic_path(out / POOL_SCORES_FILE) as tmp:
        pd.DataFrame(table).to_parquet(tmp, index=False)


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``config.json``, written last: the folder now holds a finished run."""
    write_json_atomic(out / CONFIG_FILE, summary)


def write_run(out: Path, dist: Manifest, rounds: pd.DataFrame, pool_table: dict[str, Any], embeddings: np.ndarray,
              how: str, inputs: list[str], summary: Callable[[Path | None], dict[str, Any]]) -> dict[str, Any]:
    """The tail both drivers write, in this order: the picks and the round log, the pool's scores,
    the materialised ``subset/`` (``how``), then ``config.json`` = ``summary(subset folder)``
    (returned)."""
    write_picks(out, dist, rounds)
    write_pool_scores(out, pool_table, embeddings)
    sub = materialise(dist, out, how, inputs)
    done = summary(sub)
    write_summary(out, done)
    return done


def clear_finished(out: Path) -> None:
    """Forget a finished run before replacing it (``--overwrite``): its summary, its milestone
    snapshots and its materialised files (only those it listed)."""
    (out / CONFIG_FILE).unlink(missing_ok=True)
    shutil.rmtree(out / MILESTONES_DIR, ignore_errors=True)
    clear_subset(out)


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
    dst_root = out_dir / SUBSET_DIR
    dsts = safepath.plan_writes([dst_root / src.relative_to(root) for src in paths], out_dir,
                                [*paths, *(inputs or [])])
    new_paths = []
    for src, dst in zip(paths, dsts, strict=True):
        dst.parent.mkdir(parents=True, exist_ok=True)
        safepath.require_under(dst, out_dir)  # the folder just made may not be a symlink out
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        _place(src, dst, how)
        new_paths.append(str(dst))
    Manifest(dist.df.assign(path=new_paths)).save(dst_root / "manifest.parquet")
    return dst_root


def _place(src: Path, dst: Path, how: str) -> None:
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


def clear_subset(out_dir: Path) -> None:
    """Remove an earlier run's ``subset/`` (``--overwrite``): only the files its own
    ``subset/manifest.parquet`` lists under ``out_dir/subset``, then the folders left empty.
    Anything else there (e.g. a dataset the user keeps in that folder) stays."""
    sub = out_dir / SUBSET_DIR
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


# -- reading ----------------------------------------------------------------------------------
def read_config(d: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``config.json`` as written (what a results file keeps whole)."""
    return read_json(Path(d) / CONFIG_FILE)


def read_summary(d: str | os.PathLike[str]) -> DistillSummary | None:
    """The run's ``config.json`` as a :class:`DistillSummary`; ``None`` when there is none."""
    path = Path(d) / CONFIG_FILE
    return DistillSummary.from_dict(read_config(d)) if path.exists() else None


def read_rounds(d: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The round log (``rounds.parquet``, else ``rounds.csv``); ``None`` when neither is there."""
    for name in (ROUNDS_FILE, ROUNDS_CSV):
        path = Path(d) / name
        if path.exists():
            return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    return None


def read_pool_scores(d: str | os.PathLike[str]) -> pd.DataFrame | None:
    path = Path(d) / POOL_SCORES_FILE
    return pd.read_parquet(path) if path.exists() else None


def read_embeddings(d: str | os.PathLike[str]) -> np.ndarray | None:
    path = Path(d) / EMBEDDINGS_FILE
    return np.load(path, mmap_mode="r") if path.exists() else None


def subset_at(distilled_dir: str | os.PathLike[str], budget: float) -> pd.DataFrame:
    """The distilled rows at ``budget``: ``milestones/budget_<b>.parquet``, else the first rows
    of ``distilled.parquet`` in acquisition order (round, rank) up to the budget's size."""
    distilled_dir = Path(distilled_dir)
    path = milestone_path(distilled_dir, budget)
    if path.exists():
        return pd.read_parquet(path)
    full = distilled_dir / DISTILLED_FILE
    if not full.exists():
        raise EdgedistalError(
            f"{distilled_dir}: no milestones/budget_{budget:.3f}.parquet and no distilled.parquet",
            "pass the output folder of `edgedistal distill` run with these --milestones",
        )
    df = pd.read_parquet(full)
    summary = read_summary(distilled_dir)
    if summary is None or summary.pool is None:
        raise EdgedistalError(
            f"{path}: missing, and {distilled_dir / CONFIG_FILE} does not state the pool size",
            f"re-run `edgedistal distill` with --milestones including {budget}",
        )
    n = int(round(budget * int(summary.pool)))
    if n > len(df):
        raise EdgedistalError(
            f"{full}: holds {len(df)} rows, budget {budget} needs {n}",
            "distil to a larger budget or drop that budget",
        )
    order = [c for c in ("round", "rank") if c in df.columns]
    return (df.sort_values(order) if order else df).head(n)


def method_name(distilled_dir: str | os.PathLike[str]) -> str:
    """A method's default name: the strategy its ``config.json`` records, else the folder name."""
    summary = read_summary(distilled_dir)
    if summary is not None and summary.strategy:
        return str(summary.strategy)
    return Path(distilled_dir).name


__all__ = ["DistillResult", "DistillSummary", "milestone_path", "find_distilled", "distilled_manifest",
           "write_picks", "write_pool_scores", "write_summary", "write_run", "materialise", "clear_subset", "clear_finished",
           "read_config", "read_summary", "read_rounds", "read_pool_scores", "read_embeddings", "subset_at", "method_name"]
