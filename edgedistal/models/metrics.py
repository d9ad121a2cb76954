"""Detection metrics at frame and video level (sklearn underneath).

Deepfake benchmarks report AUC on frames and on videos (the mean frame probability of a video),
and the data is imbalanced (DFDC ~83% fake), so balanced accuracy and EER sit next to raw
accuracy. Single-class inputs (a tiny val split, a distilled set) give NaN for the ranking
metrics and a note instead of an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

EPS = 1e-7


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return math.nan
    return float(skm.roc_auc_score(y, p))


def eer(y: np.ndarray, p: np.ndarray) -> float:
    """Equal error rate: where false-positive and false-negative rates cross (interpolated)."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return math.nan
    fpr, tpr, _ = skm.roc_curve(y, p)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # increasing from <=0 to >=0 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float((fpr[i] + fnr[i]) / 2)
    # linear interpolation between points i-1 and i
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def binary_metrics(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, threshold: float = 0.5) -> dict:
    """AUC, AP, EER, ACC, balanced accuracy and log loss for labels ``y`` and fake probs ``p``."""
    y = np.asarray(y, dtype=np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise ValueError(f"labels ({len(y)}) and probabilities ({len(p)}) differ in length")
    n_pos = int(y.sum())
    out: dict = {"n": int(len(y)), "n_fake": n_pos, "n_real": int(len(y) - n_pos)}
    if len(y) == 0:
        return out | {k: math.nan for k in ("auc", "ap", "eer", "acc", "balanced_acc", "log_loss")}
    two = 0 < n_pos < len(y)
    pred = (p >= threshold).astype(np.int64)
    out["auc"] = auc(y, p)
    out["ap"] = float(skm.average_precision_score(y, p)) if two else math.nan
    out["eer"] = eer(y, p)
    out["acc"] = float((pred == y).mean())
    # recall per present class, averaged: equals sklearn's balanced accuracy with two classes
    recalls = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    out["balanced_acc"] = float(np.mean(recalls))
    out["log_loss"] = float(skm.log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))
    if not two:
        out["note"] = f"only one class present ({'fake' if n_pos else 'real'}): AUC, AP and EER undefined"
    return out


def video_scores(y: np.ndarray, p: np.ndarray, videos: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """One row per video: its label (max over frames) and mean frame probability."""
    df = pd.DataFrame({"video": np.asarray(videos).astype(str), "y": np.asarray(y, np.int64), "p": np.asarray(p, np.float64)})
    g = df.groupby("video", sort=True)
    out = g.agg(y=("y", "max"), p=("p", "mean"), frames=("p", "size"))
    mixed = g["y"].nunique() > 1
    out.attrs["mixed_label_videos"] = int(mixed.sum())
    return out


def compute_metrics(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    videos: Sequence[str] | np.ndarray | None = None,
    threshold: float = 0.5,
) -> dict:
    """``{"frame": {...}, "video": {...}}`` (video only when ``videos`` is given).

    Video level averages the frame probabilities of each video (the usual DFDC/FF++ protocol).
    """
    out = {"frame": binary_metrics(y, p, threshold)}
    if videos is not None:
        v = video_scores(np.asarray(y), np.asarray(p), videos)
        out["video"] = binary_metrics(v["y"].to_numpy(), v["p"].to_numpy(), threshold)
        if v.attrs["mixed_label_videos"]:
            out["video"]["note"] = f"{v.attrs['mixed_label_videos']} video(s) mix real and fake frames; labelled fake"
    return out


def format_table(metrics: dict) -> str:
    """A small fixed-width table (level × metric) for terminal output."""
    keys = ("n", "auc", "ap", "eer", "acc", "balanced_acc", "log_loss")
    lines = ["level  " + "".join(f"{k:>13}" for k in keys)]
    for level, m in metrics.items():
        if not isinstance(m, dict) or "n" not in m:
            continue
        cells = []
        for k in keys:
            v = m.get(k, math.nan)
            cells.append(f"{v:>13d}" if isinstance(v, int) else f"{v:>13.4f}")
        lines.append(f"{level:<7}" + "".join(cells))
        if "note" in m:
            lines.append(f"  note: {m['note']}")
    return "\n".join(lines)


# -- is the detector better than a coin? -------------------------------------------------------
#: What usually lifts a from-scratch detector off chance, in the order to try it.
CHANCE_FIX = ("train longer (--steps), on larger images (--image-size 96 or 128), or start from "
              "learned features (`train --init EMBEDDER`)")


def auc_standard_error(n_pos: int, n_neg: int, auc_value: float = 0.5) -> float:
    """Hanley & McNeil (1982) standard error of an AUC estimated from ``n_pos`` positives and
    ``n_neg`` negatives (at ``auc_value``; 0.5 = under the null of a coin). Why not a bootstrap:
    the warning needs no predictions, only the counts a summary already holds."""
    if n_pos < 1 or n_neg < 1:
        return math.nan
    a = float(auc_value)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def chance_check(auc_value: float, n_pos: int, n_neg: int, y_pred: Sequence[int] | np.ndarray | None = None,
                 balanced_acc: float | None = None, *, z: float = 1.96) -> str | None:
    """Why a detector is indistinguishable from chance, or None when it is not.

    At chance means: it calls every sample the same class (``y_pred`` has one value, or balanced
    accuracy is exactly 0.5), or its AUC lies within ``z`` Hanley–McNeil standard errors of 0.5
    (the 95 % band of a coin on this many samples). An undefined AUC (one class) decides nothing.
    """
    if y_pred is not None:
        pred = np.asarray(y_pred).ravel()
        if len(pred) and len(np.unique(pred)) == 1:
            return f"it calls all {len(pred)} samples {'fake' if int(pred[0]) else 'real'}"
    if balanced_acc is not None and math.isfinite(balanced_acc) and abs(balanced_acc - 0.5) < 1e-9:
        return "balanced accuracy 0.50 (it calls every sample the same class, or guesses)"
    if auc_value is None or not math.isfinite(auc_value):
        return None
    se = auc_standard_error(int(n_pos), int(n_neg))
    if math.isfinite(se) and abs(auc_value - 0.5) < z * se:
        return f"AUC {auc_value:.3f} is within noise of 0.5 (±{z * se:.3f} on {int(n_pos) + int(n_neg)} samples)"
    return None


def chance_warning(metrics: dict, what: str = "the detector") -> str | None:
    """One warning line (with the fix) when a metrics dict (``binary_metrics`` output, or
    ``compute_metrics`` output: its frame level) says the detector is at chance."""
    m = metrics.get("frame", metrics)
    if not isinstance(m, dict):
        return None
    why = chance_check(m.get("auc", math.nan), m.get("n_fake", 0), m.get("n_real", 0),
                       balanced_acc=m.get("balanced_acc"))
    if why is None:
        return None
    return f"{what} is at chance: {why}. Fix: {CHANCE_FIX}."
