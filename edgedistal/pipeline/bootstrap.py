"""A paired interval that also counts the test set as a sample: a bootstrap over seeds *and* test groups.

The seed t-interval (:func:`edgedistal.pipeline.compare.paired_diff`) treats the test set as
fixed: every seed is scored on the same 2,368 crops of 402 identities, so whatever those
identities happen to favour is shared by all seeds and never enters the interval. A method can
then "win" on this test set and not on the next one. Resampling the test set by *group* (an
identity's crops move together; resampling crops would pretend they are independent) as well as
the seeds gives the interval a user drawing new identities would see. It needs each kept model's
test scores (``cells/<cell>.scores.npy``); older cells without them get no bootstrap column.

Weighted AUC instead of resampled rows: a group bootstrap replicate is a weight per group (how
often it was drawn), so each replicate's AUC is a weighted Mann–Whitney statistic over the same
sorted scores — one cumulative sum per model and replicate instead of a sort.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Bootstrap replicates: the 2.5/97.5 % percentiles settle to ~0.002 AUC at 2,000.
N_BOOT = 2000


def _tie_blocks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sort order of ``scores`` and, per block of tied scores, its start in that order."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    return order, np.flatnonzero(np.r_[True, s[1:] != s[:-1]])


def weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` (label 1 = positive) with per-row ``weights`` of shape (n,) or (B, n):
    P(score of a weighted positive > a weighted negative), ties counted half. Returns (B,) or ()."""
    scores, y = np.asarray(scores, np.float64), np.asarray(y).astype(bool)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    order, starts = _tie_blocks(scores)
    ws, ys = w[:, order], y[order]
    pos = np.add.reduceat(ws * ys, starts, axis=1)  # weight of positives per tie block
    neg = np.add.reduceat(ws * ~ys, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each block
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return auc if np.ndim(weights) > 1 else auc[0]


def group_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) row weights of a cluster bootstrap: draw as many groups as there are, with
    replacement; a row weighs how often its group was drawn."""
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(np.float64)
    return counts[:, codes]


def paired_bootstrap(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray], y: np.ndarray,
                     groups: np.ndarray, *, n_boot: int = N_BOOT, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, Any]:
    """Mean over seeds of AUC(a[s]) − AUC(b[s]) with a percentile interval from resampling the
    paired seeds and the test groups together; ``win``/``loss`` only when it excludes 0.

    ``a``, ``b``: {seed: test scores aligned with ``y`` and ``groups``}. Seeds both arms lack
    are dropped; with fewer than two there is no seed spread, and the verdict says so."""
    seeds = sorted(set(a) & set(b))
    y = np.asarray(y)
    out: dict[str, Any] = {"n": len(seeds), "n_boot": n_boot, "mean": math.nan, "lo": math.nan, "hi": math.nan}
    if len(seeds) < 2:
        out["verdict"] = "1 seed" if seeds else "n/a"
        return out
    for s in seeds:
        if len(a[s]) != len(y) or len(b[s]) != len(y):
            raise ValueError(f"seed {s}: {len(a[s])} / {len(b[s])} scores for a test set of {len(y)}")
    rng = np.random.default_rng(seed)
    w = group_weights(groups, n_boot, rng)
    ones = np.ones(len(y))
    point = np.array([weighted_auc(a[s], y, ones) - weighted_auc(b[s], y, ones) for s in seeds])
    per_seed = np.stack([weighted_auc(a[s], y, w) - weighted_auc(b[s], y, w) for s in seeds], axis=1)
    pick = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    reps = np.nanmean(np.take_along_axis(per_seed, pick, axis=1), axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(reps, [tail, 100 - tail])
    out.update(mean=float(point.mean()), lo=float(lo), hi=float(hi),
               verdict="win" if lo > 0 else "loss" if hi < 0 else "tie")
    return out


def scores_by_seed(cells: Sequence[Mapping[str, Any]], load: Any) -> dict[int, np.ndarray]:
    """{seed: test scores} of the given cells, through ``load(cell_record) -> array | None``;
    empty when any cell lacks them (a partial set would drop seeds silently)."""
    out = {}
    for rec in cells:
        arr = load(rec)
        if arr is None:
            return {}
        out[int(rec["seed"])] = arr
    return out
