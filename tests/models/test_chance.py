"""The at-chance warning: a detector no better than a coin says so, with the fix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from edgedistal.models.metrics import (
    CHANCE_FIX,
    auc_standard_error,
    binary_metrics,
    chance_check,
    chance_warning,
)


def test_hanley_mcneil_standard_error():
    # at AUC 0.5: Q1 = 1/3, Q2 = 1/3 → var = (0.25 + (n1-1)/12 + (n2-1)/12) / (n1 n2)
    n1, n2 = 100, 120
    expected = math.sqrt((0.25 + (n1 - 1) / 12 + (n2 - 1) / 12) / (n1 * n2))
    assert auc_standard_error(n1, n2) == pytest.approx(expected)
    assert auc_standard_error(400, 400) < auc_standard_error(40, 40)  # more samples, less noise
    assert math.isnan(auc_standard_error(0, 10))


def test_chance_check_noise_band_depends_on_size():
    # the detector: test AUC 0.55 on 408 images is a coin (band ±0.056)
    assert "within noise of 0.5" in chance_check(0.55, 190, 218)
    assert chance_check(0.55, 5000, 5000) is None  # the same AUC on 10,000 images is not
    assert chance_check(0.70, 190, 218) is None
    assert chance_check(0.30, 190, 218) is None  # inverted but informative: not "chance"
    assert chance_check(math.nan, 0, 50) is None  # one class: undefined, decides nothing


def test_one_predicted_class_is_chance_whatever_the_auc():
    assert "calls all 4 samples real" in chance_check(0.9, 2, 2, y_pred=[0, 0, 0, 0])
    assert "balanced accuracy 0.50" in chance_check(0.9, 200, 200, balanced_acc=0.5)
    assert chance_check(0.9, 200, 200, y_pred=[0, 1, 1], balanced_acc=0.8) is None


def test_chance_warning_from_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    coin = binary_metrics(y, np.full(400, 0.49))  # everything "real" (the max p 0.498)
    line = chance_warning({"frame": coin}, "on test, the detector")
    assert line.startswith("on test, the detector is at chance") and CHANCE_FIX in line
    good = binary_metrics(y, np.clip(y * 0.6 + rng.uniform(0, 0.4, 400), 0, 1))
    assert chance_warning(good) is None


def test_evaluate_summary_flags_a_full_pool_at_chance():
    from edgedistal.pipeline.compare import flag_chance

    summary = {"curves": {"balanced": {"points": [{"n_seeds": 2, "frame_auc_mean": 0.51,
                                                   "frame_balanced_acc_mean": 0.5}]}},
               "full": {"n_seeds": 2, "frame_auc_mean": 0.486, "frame_balanced_acc_mean": 0.51},
               "warnings": ["older"], "conclusion": "No distilled method beats …"}
    flag_chance(summary, 190, 218)
    assert summary["at_chance"]["arms"] == ["balanced"] and summary["at_chance"]["full"]
    assert summary["warnings"][0].startswith("The full pool's detector is at chance")
    assert summary["warnings"][1] == "older"
    assert summary["conclusion"].startswith("AT CHANCE")
    ok = {"curves": {}, "full": {"n_seeds": 2, "frame_auc_mean": 0.8}, "warnings": [], "conclusion": "x"}
    assert flag_chance(ok, 190, 218)["warnings"] == [] and ok["conclusion"] == "x"


def test_evaluate_summary_names_single_models_at_chance():
    """An arm whose mean is fine can still hold a seed at chance: that model is named, once."""
    import pandas as pd

    from edgedistal.pipeline.compare import flag_chance

    cells = pd.DataFrame([
        {"cell": "random_b0.010_s0", "arm": "random", "frame_auc": 0.80, "frame_balanced_acc": 0.5},  # ranks well
        {"cell": "random_b0.010_s1", "arm": "random", "frame_auc": 0.52, "frame_balanced_acc": 0.55},
        {"cell": "balanced_b0.010_s0", "arm": "balanced", "frame_auc": 0.50, "frame_balanced_acc": 0.5},
        {"cell": "balanced_b0.010_s1", "arm": "balanced", "frame_auc": 0.51, "frame_balanced_acc": 0.5},
    ])
    summary = {"curves": {"random": {"points": [{"n_seeds": 2, "frame_auc_mean": 0.66}]},
                          "balanced": {"points": [{"n_seeds": 2, "frame_auc_mean": 0.505}]}},
               "full": {}, "warnings": [], "conclusion": "x"}
    flag_chance(summary, 190, 218, cells=cells)
    chance = summary["at_chance"]
    assert chance["arms"] == ["balanced"]  # the whole arm: said once, not per model
    assert chance["models"] == ["random_b0.010_s1"]
    assert summary["warnings"][1].startswith("1 of 4 models are at chance on test (random_b0.010_s1)")
    fine = {"curves": {"random": {"points": [{"n_seeds": 1, "frame_auc_mean": 0.8}]}}, "full": {},
            "warnings": [], "conclusion": "x"}
    assert flag_chance(fine, 190, 218, cells=cells.iloc[:1])["warnings"] == []


def test_predict_warns_when_every_file_gets_one_verdict():
    from edgedistal.commands.show import one_class_warning, prediction_summary

    files = pd.DataFrame({"verdict": ["real"] * 12, "prob_fake": np.linspace(0.40, 0.498, 12), "error": ""})
    w = one_class_warning(files, 0.5)
    assert "all 12 scored files are 'real'" in w and "0.400–0.498" in w
    mixed = files.assign(verdict=["real"] * 11 + ["FAKE"])
    assert one_class_warning(mixed, 0.5) is None
    assert prediction_summary(mixed) == {"files": 12, "fake": 1, "real": 11, "no_face": 0, "failed": 0}
