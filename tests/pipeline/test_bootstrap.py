"""The seeds × test-groups bootstrap: its AUC is sklearn's, it sees what a fixed test set hides,
and the evaluation keeps each kept model's test scores safely enough to feed it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from edgedistal.pipeline.bootstrap import group_weights, paired_bootstrap, weighted_auc


def test_weighted_auc_is_sklearns_with_ties_and_weights() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.4 * y, 1)  # many ties
    w = rng.integers(0, 4, 500).astype(float)
    assert weighted_auc(s, y, np.ones(500)) == pytest.approx(roc_auc_score(y, s))
    assert weighted_auc(s, y, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w))
    many = weighted_auc(s, y, np.stack([np.ones(500), w]))
    assert many.shape == (2,) and many[1] == pytest.approx(roc_auc_score(y, s, sample_weight=w))


def test_group_weights_move_a_groups_rows_together_and_draw_as_many_groups() -> None:
    groups = np.repeat(np.arange(40), 3).astype(str)
    w = group_weights(groups, 200, np.random.default_rng(1))
    assert w.shape == (200, 120)
    assert np.all(w[:, 0::3] == w[:, 1::3]) and np.all(w[:, 0::3] == w[:, 2::3])
    assert np.all(w[:, 0::3].sum(axis=1) == 40)


def _pair(rng, n_seeds: int, n: int, effect_on, noise: float = 0.3):
    y = rng.integers(0, 2, n)
    base = rng.random(n) + 0.5 * y
    a = {s: base + rng.normal(0, noise, n) + effect_on * y for s in range(n_seeds)}
    b = {s: base + rng.normal(0, noise, n) for s in range(n_seeds)}
    return a, b, y


def test_a_real_effect_wins_and_pure_noise_is_a_tie_at_about_the_stated_rate() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(100), 6)
    a, b, y = _pair(rng, 10, 600, 0.15)
    assert paired_bootstrap(a, b, y, groups, n_boot=500)["verdict"] == "win"
    false = 0
    for rep in range(30):
        a, b, y = _pair(np.random.default_rng(100 + rep), 6, 600, 0.0)
        false += paired_bootstrap(a, b, y, groups, n_boot=300, seed=rep)["verdict"] != "tie"
    assert false <= 5  # 5 % nominal: 1.5 expected of 30


def test_an_effect_carried_by_a_few_test_identities_is_a_tie_although_every_seed_agrees() -> None:
    """The point of the bootstrap: ``a`` beats ``b`` only on one of 60 test identities, identically in
    every seed, so the seed t-interval is tight around a positive mean; resampling identities
    shows it would not survive a new test draw."""
    from edgedistal.pipeline.compare import paired_diff

    rng = np.random.default_rng(3)
    n, groups = 600, np.repeat(np.arange(60), 10)
    y = rng.integers(0, 2, n)
    base = rng.random(n) + 0.3 * y
    lucky = groups == 0
    a = {s: base + 2.0 * (lucky & (y == 1)) + rng.normal(0, 0.01, n) for s in range(8)}
    b = {s: base + rng.normal(0, 0.01, n) for s in range(8)}
    t = paired_diff({s: roc_auc_score(y, a[s]) for s in a}, {s: roc_auc_score(y, b[s]) for s in b})
    boot = paired_bootstrap(a, b, y, groups, n_boot=1000)
    assert t["verdict"] == "win" and boot["mean"] == pytest.approx(t["mean"])
    assert boot["verdict"] == "tie" and boot["hi"] - boot["lo"] > 5 * (t["hi"] - t["lo"])


def test_one_seed_gets_no_interval_and_misaligned_scores_are_refused() -> None:
    y = np.array([0, 1, 0, 1])
    one = paired_bootstrap({0: np.arange(4.0)}, {0: np.arange(4.0)}, y, y)
    assert one["verdict"] == "1 seed" and np.isnan(one["lo"])
    with pytest.raises(ValueError, match="seed 1: 3 / 4 scores"):
        paired_bootstrap({0: np.arange(4.0), 1: np.arange(3.0)}, {0: np.arange(4.0), 1: np.arange(4.0)}, y, y)


def test_cell_scores_are_read_only_when_whole_plain_and_the_kept_models(tmp_path) -> None:
    from edgedistal.pipeline.cell_training import scores_digest
    from edgedistal.pipeline.evaluate import read_scores, scores_path, write_scores

    s = np.linspace(0, 1, 5, dtype=np.float32)
    rec = {"cell": "random_b0.100_s0", "test_scores_sha": scores_digest(s)}
    assert read_scores(tmp_path, rec, 5) is None  # none yet (an older cell)
    write_scores(tmp_path, rec["cell"], s)
    assert np.array_equal(read_scores(tmp_path, rec, 5), s)
    assert read_scores(tmp_path, rec, 6) is None  # another test set
    assert read_scores(tmp_path, {**rec, "test_scores_sha": "0" * 16}, 5) is None  # another run's scores
    assert read_scores(tmp_path, {"cell": rec["cell"]}, 5) is None  # a record that names none
    path = scores_path(tmp_path, rec["cell"])
    path.write_bytes(path.read_bytes()[:40])  # torn
    assert read_scores(tmp_path, rec, 5) is None
    with open(path, "wb") as fh:  # an object array: np.load would unpickle it; it is refused
        np.save(fh, np.array([object()] * 5, dtype=object), allow_pickle=True)
    assert read_scores(tmp_path, rec, 5) is None
