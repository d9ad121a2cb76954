"""Screening protocol: a logistic head per arm and seed on frozen features (seconds, CPU).

Why a second protocol: fine-tuning one model per (arm, budget, seed) costs minutes to hours,
so a method can only be checked with a handful of seeds. With the features fixed (the output
of ``edgedistal score``: ``scores.parquet`` + ``embeddings.npy``, one row per manifest row), a
standardised logistic regression (scikit-learn) trains in milliseconds, and 20+ paired seeds
per budget are cheap. It answers "is this subset more informative *in this feature space*?",
not "does it train a better detector": reports label it **screening**; claims come from the
fine-tune protocol (:mod:`edgedistal.pipeline.evaluate`).

Arms and pairing are those of the fine-tune protocol: per budget and seed the distilled
subsets, ``random``, ``balanced`` and a ``stratified`` arm with each method's label mix, drawn
with the same subset seeds; the full pool once. A distilled subset is fixed, so its seed-to-seed
spread is zero and the paired difference varies through the baselines' draws. No RS2: a
logistic head has no epochs to resample. The verdicts use
:func:`edgedistal.pipeline.compare.summarise` (paired t-interval over seeds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.pipeline.baselines import (
    balanced_subset,
    random_subset,
    stratified_name,
    stratified_subset,
    subset_seed,
)
from edgedistal.pipeline.compare import summarise
from edgedistal.utils.io import atomic_path, write_json_atomic, write_text_atomic

DEFAULT_SEEDS = 20


def load_features(features_dir: str | Path, sample_ids: np.ndarray) -> np.ndarray:
    """Embeddings of ``sample_ids`` (manifest order) from an ``edgedistal score`` folder."""
    d = Path(features_dir)
    if not (d / "scores.parquet").exists() or not (d / "embeddings.npy").exists():
        raise EdgedistalError(f"{d}: no scores.parquet + embeddings.npy",
                              "pass the --out folder of `edgedistal score` (or the embedder's score output)")
    ids = pd.read_parquet(d / "scores.parquet", columns=["sample_id"])["sample_id"].astype(str).to_numpy()
    emb = np.load(d / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    if emb.ndim != 2 or len(emb) != len(ids):
        raise EdgedistalError(f"{d}: embeddings.npy has shape {emb.shape} for {len(ids)} scored rows",
                              "re-run `edgedistal score` into an empty folder")
    pos = pd.Series(np.arange(len(ids)), index=ids)
    missing = ~pd.Index(sample_ids).isin(pos.index)
    if missing.any():
        raise EdgedistalError(f"{d}: {int(missing.sum())} manifest row(s) were not scored",
                              "score the whole manifest (no --split) with `edgedistal score`")
    return np.asarray(emb[pos[sample_ids].to_numpy()], dtype=np.float32)


def fit_head(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int = 0, c: float = 1.0) -> np.ndarray:
    """Fake probabilities on ``x_test`` from a standardised, class-balanced logistic head."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2:  # one class only: a constant, which scores AUC 0.5
        return np.full(len(x_test), float(y.mean()) if len(y) else 0.5)
    head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, class_weight="balanced",
                                                              random_state=seed))
    head.fit(x, y)
    return head.predict_proba(x_test)[:, 1]


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def screen_cells(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, pool_rows: np.ndarray,
                 test_rows: np.ndarray, budgets: Sequence[float], seeds: int,
                 method_rows: Mapping[str, Mapping[Any, np.ndarray]] | None = None,
                 random_mode: str = "samples", include_full: bool = True) -> pd.DataFrame:
    """One row per (arm, budget, seed) with the head's test AUC (``frame_auc``); pure arrays, so
    tests can plant a signal. ``method_rows[name][budget]`` are manifest row positions, or
    ``method_rows[name][(budget, seed)]`` for a method distilled once per seed."""
    from edgedistal.pipeline.evaluate import mean_mixes

    method_rows = method_rows or {}
    per_seed = {(m, b, s): np.asarray(per_b[(b, s)] if (b, s) in per_b else per_b[b])
                for m, per_b in method_rows.items() for b in budgets for s in range(seeds)}
    mix_of = mean_mixes(per_seed, labels)
    x_test, y_test = features[test_rows], labels[test_rows]
    pool_labels, pool_groups = labels[pool_rows], groups[pool_rows]
    rows: list[dict[str, Any]] = []
    memo: dict[tuple, float] = {}  # a fixed subset trains to the same head: fit it once

    def cell(arm: str, kind: str, b: float, s: int, idx: np.ndarray, **extra: Any) -> None:
        key = (arm, b, tuple(np.sort(idx).tolist())) if kind != "baseline" else None
        t0 = time.perf_counter()
        if key is not None and key in memo:
            auc = memo[key]
        else:
            auc = _auc(y_test, fit_head(features[idx], labels[idx], x_test))
            if key is not None:
                memo[key] = auc
        rows.append({"arm": arm, "kind": kind, "budget": b, "seed": s, "frame_auc": auc,
                     "n_train": int(len(idx)), "n_real": int((labels[idx] == 0).sum()),
                     "n_fake": int((labels[idx] == 1).sum()), "n_groups": int(len(np.unique(groups[idx]))),
                     "wall_s": time.perf_counter() - t0, "samples_seen": int(len(idx)), "converged": True,
                     "protocol": "screen", "cell": f"{arm}_b{b:.3f}_s{s}" if kind != "full" else f"full_s{s}",
                     **extra})

    for s in range(seeds):
        if include_full:
            cell("full", "full", 1.0, s, pool_rows)
        for b in budgets:
            n = int(round(b * len(pool_rows)))
            if n < 2:
                raise EdgedistalError(f"budget {b} is {n} sample(s) of a {len(pool_rows)}-sample pool",
                                      "use larger budgets or a larger pool")
            mixes: dict[str, float] = {}
            for m in method_rows:
                idx = per_seed[(m, b, s)]
                share = float((labels[idx] == 0).mean()) if len(idx) else 0.5
                strat = stratified_name(mix_of[(m, b)])
                mixes.setdefault(strat, round(mix_of[(m, b)], 2))
                cell(m, "distilled", b, s, idx, real_share=share, stratified_arm=strat)
            cell("random", "baseline", b, s,
                 pool_rows[random_subset(pool_groups, n, seed=subset_seed("random", b, s), mode=random_mode)])
            cell("balanced", "baseline", b, s, pool_rows[balanced_subset(pool_labels, n, seed=subset_seed("balanced", b, s))])
            for strat, share in sorted(mixes.items()):
                pos = stratified_subset(pool_labels, pool_groups, n, share, seed=subset_seed(strat, b, s))
                cell(strat, "baseline", b, s, pool_rows[pos], real_share=share)
    return pd.DataFrame(rows)


def run_screen(manifest: Manifest, features_dir: str | Path, *, distilled: Any = None,
               budgets: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2), seeds: int = DEFAULT_SEEDS,
               out_dir: str | Path | None = None, split_seed: int = 0, random_mode: str = "samples",
               eval_split: str = "test") -> dict:
    """Screen every distilled method against the baselines on frozen features; returns the
    summary (``protocol: screen``) and writes ``summary.json``, ``cells.parquet``, ``screen.md``.
    ``eval_split="val"`` scores the heads on val: choose a method there, then report test once."""
    from edgedistal.data.split import ensure_split
    from edgedistal.pipeline.evaluate import as_methods, method_subsets

    if seeds < 2:
        raise EdgedistalError("screening needs at least 2 seeds for a paired interval", "e.g. --seeds 20")
    budgets = tuple(sorted(float(b) for b in budgets))
    t0 = time.perf_counter()
    manifest = ensure_split(manifest, seed=split_seed)
    df = manifest.df
    pool_rows = np.flatnonzero((df["split"] == "train").to_numpy())
    if eval_split not in ("val", "test"):
        raise EdgedistalError(f"screening scores on val or test, not {eval_split!r}", "pass --split val or --split test")
    test_rows = np.flatnonzero((df["split"] == eval_split).to_numpy())
    if len(pool_rows) == 0 or len(test_rows) == 0:
        raise EdgedistalError(f"the manifest needs a train pool and a held-out {eval_split} split",
                              "split it by group (`edgedistal ingest`) with non-zero train and test fractions")
    feats = load_features(features_dir, df["sample_id"].astype(str).to_numpy())
    methods = as_methods(distilled)
    row_of = pd.Series(np.arange(len(df)), index=df["sample_id"].astype(str).to_numpy())
    pool_set = set(pool_rows.tolist())
    subsets = method_subsets(methods, budgets, lambda b: seeds, row_of, pool_set)
    mrows = {m: {(b, s): rows for (mm, b, s), rows in subsets.items() if mm == m} for m in methods}
    cells = screen_cells(feats, df["label"].to_numpy(np.int64), df["group"].astype(str).to_numpy(), pool_rows,
                         test_rows, budgets, seeds, mrows, random_mode=random_mode)
    summary = summarise(cells, budgets)
    summary.update({"protocol": "screen", "screening": True, "features": str(Path(features_dir).resolve()),
                    "methods": {m: str(d) for m, d in methods.items()}, "seeds": seeds,
                    "pool_size": int(len(pool_rows)), "test_size": int(len(test_rows)), "eval_split": eval_split,
                    "feature_dim": int(feats.shape[1]), "wall_s": time.perf_counter() - t0,
                    "random_mode": random_mode, "planned_cells": len(cells), "finished_cells": len(cells)})
    summary["conclusion"] = (f"SCREENING on {eval_split} (logistic head on frozen features): "
                             + summary["conclusion"])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "cells.parquet") as tmp:
            cells.to_parquet(tmp, index=False)
        write_json_atomic(out / "summary.json", summary)
        write_json_atomic(out / "eval_config.json", {"eval": {"protocol": "screen", "seeds": seeds,
                                                              "budgets": list(budgets)},
                                                     "train": {"backbone": "logistic head", "features": str(features_dir)}})
        write_text_atomic(out / "screen.md", screen_markdown(summary))
    return summary


def screen_markdown(summary: dict) -> str:
    """The screening verdict table, labelled as screening."""
    from edgedistal.pipeline.report import _md_table, comparison_table

    lines = ["# Screening: logistic head on frozen features", "",
             f"**{summary['conclusion']}**", "",
             f"Features: `{summary.get('features')}` ({summary.get('feature_dim')} dims); {summary.get('seeds')} "
             f"paired seeds; pool {summary.get('pool_size')}, {summary.get('eval_split', 'test')} "
             f"{summary.get('test_size')}; "
             f"{summary.get('wall_s', 0):.1f} s on the CPU.", "",
             "This is a **screening** result: it ranks subsets by what a linear head learns from fixed "
             "features. Claims about detectors come from the fine-tune protocol (`edgedistal evaluate "
             "--protocol converged`). Each distilled method is one subset (its AUC varies only with the "
             "head's seed), so the interval covers the baselines' draws, not the method's own selection "
             "variance nor the sampling error of the fixed evaluation split: choose on val, confirm on test, "
             "and distil with several seeds before a claim.", ""]
    comp = comparison_table(summary)
    if not comp.empty:
        lines += [_md_table(comp), ""]
    return "\n".join(lines)
