"""Frame/video metrics against hand-computed values (no model involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgedistal.models.metrics import (
    binary_metrics,
    compute_metrics,
    eer,
    format_table,
    video_scores,
)


def test_frame_metrics_hand_checked():
    # 2 real (0.1, 0.6), 2 fake (0.4, 0.9): pairs (fake > real) = 0.4>0.1, 0.9>0.1, 0.9>0.6 → 3/4
    y = [0, 0, 1, 1]
    p = [0.1, 0.6, 0.4, 0.9]
    m = binary_metrics(y, p)
    assert m["auc"] == pytest.approx(0.75)
    # ranking 0.9(+) 0.6(-) 0.4(+) 0.1(-): AP = (1/1 + 2/3) / 2
    assert m["ap"] == pytest.approx((1 + 2 / 3) / 2)
    # threshold 0.5 → preds 0,1,0,1: correct = idx 0 and 3 → acc 0.5; recall real 1/2, fake 1/2
    assert m["acc"] == pytest.approx(0.5)
    assert m["balanced_acc"] == pytest.approx(0.5)
    expected_ll = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert (m["n"], m["n_fake"], m["n_real"]) == (4, 2, 2)
    # EER: at threshold 0.6 fpr=1/2, fnr=1/2 → 0.5
    assert m["eer"] == pytest.approx(0.5)


def test_eer_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert eer(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == pytest.approx(0.0)
    assert eer(y, np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])) == pytest.approx(1.0)


def test_balanced_accuracy_differs_from_accuracy_on_imbalanced_data():
    # 1 real, 4 fakes, everything predicted fake: acc 0.8 but balanced acc 0.5
    m = binary_metrics([0, 1, 1, 1, 1], [0.9, 0.9, 0.8, 0.7, 0.6])
    assert m["acc"] == pytest.approx(0.8)
    assert m["balanced_acc"] == pytest.approx(0.5)


def test_video_level_averages_frames_hand_checked():
    # video a (real): frames 0.2, 0.8 → 0.5 ; video b (real): 0.3 → 0.3
    # video c (fake): 0.4, 0.6, 0.2 → 0.4 ; video d (fake): 0.9, 0.7 → 0.8
    videos = ["a", "a", "b", "c", "c", "c", "d", "d"]
    y = [0, 0, 0, 1, 1, 1, 1, 1]
    p = [0.2, 0.8, 0.3, 0.4, 0.6, 0.2, 0.9, 0.7]
    v = video_scores(np.array(y), np.array(p), videos)
    assert v.loc["a", "p"] == pytest.approx(0.5)
    assert v.loc["c", "p"] == pytest.approx(0.4)
    assert list(v["frames"]) == [2, 1, 3, 2]
    m = compute_metrics(y, p, videos)
    # video pairs (fake > real): c .4 vs a .5 no, c vs b .3 yes, d vs a yes, d vs b yes → 3/4
    assert m["video"]["auc"] == pytest.approx(0.75)
    assert m["video"]["n"] == 4
    # video threshold 0.5: a→1 (wrong), b→0, c→0 (wrong), d→1 → acc 0.5
    assert m["video"]["acc"] == pytest.approx(0.5)
    # frame AUC differs: 15 pairs (5 fake × 3 real), count fake > real (+0.5 ties)
    fake, real = [0.4, 0.6, 0.2, 0.9, 0.7], [0.2, 0.8, 0.3]
    pairs = sum((f > r) + 0.5 * (f == r) for f in fake for r in real)
    assert m["frame"]["auc"] == pytest.approx(pairs / 15)


def test_single_class_gives_nan_and_note_not_crash():
    m = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9], videos=["x", "x", "y"])
    assert math.isnan(m["frame"]["auc"]) and math.isnan(m["frame"]["eer"])
    assert math.isnan(m["video"]["ap"])
    assert "one class" in m["frame"]["note"]
    assert m["frame"]["acc"] == pytest.approx(2 / 3)
    assert "nan" in format_table(m)


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5])
