"""Difficulty-based selection (CCS, easy2hard, D2), training-dynamics scores, group caps,
frequency features, ProbCover and the cold-start switch, on tiny hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgedistal.acquire.coldstart import ColdStart, ProbCover, purity_radius
from edgedistal.acquire.difficulty import CCS, D2Pruning, EasyToHard, ccs_hard_cut, share_budget
from edgedistal.acquire.dynamics import group_folds, scores_from_logits
from edgedistal.acquire.frequency import azimuthal_spectrum, frequency_features, log_dct_stats
from edgedistal.acquire.kernels import knn
from edgedistal.acquire.registry import get_strategy
from edgedistal.acquire.state import SelectionState
from edgedistal.acquire.strategies import RandomSampling


def _scored_state(d: np.ndarray, emb: np.ndarray | None = None, **kw) -> SelectionState:
    """A state whose AUM is ``−d`` (so difficulty = ``d``)."""
    n = len(d)
    emb = np.eye(n, dtype=np.float32) if emb is None else emb
    return SelectionState.build(emb, np.full(n, 0.5), np.zeros(n, bool), scores={"aum": -np.asarray(d, float)},
                                reasons={}, **kw)


# -- CCS -----------------------------------------------------------------------------------------
def test_ccs_budget_sharing_matches_hand_worked_example():
    # strata of 1, 5, 10, 20 rows, budget 12: 12//4=3 → 1 (all of it); 11//3=3 → 3; 8//2=4 → 4; 4//1 → 4
    assert share_budget(np.array([1, 5, 10, 20]), 12).tolist() == [1, 3, 4, 4]
    assert share_budget(np.array([10, 0, 2]), 7).tolist() == [5, 0, 2]  # empty strata take nothing
    assert share_budget(np.array([3, 3]), 10).sum() == 6  # never more than the strata hold
    d = np.array([0.1] + [1.1] * 5 + [2.1] * 10 + list(np.linspace(3.1, 4.0, 20)))
    s = _scored_state(d)
    picks = CCS(strata=4, beta=0.0).select(s, 12)
    assert len(set(picks.tolist())) == 12
    strata = np.minimum(((d[picks] - 0.1) / (3.9 / 4)).astype(int), 3)
    assert np.bincount(strata, minlength=4).tolist() == [1, 3, 4, 4]
    assert all(s.reasons[int(i)].startswith("ccs: stratum") for i in picks)


def test_ccs_drops_the_hardest_beta_and_rule_grows_with_pruning():
    d = np.arange(40, dtype=float)
    picks = CCS(strata=5, beta=0.25).select(_scored_state(d), 10)
    assert d[picks].max() < 30  # the 10 hardest (30..39) were cut
    assert ccs_hard_cut(0.7) == 0.0 and ccs_hard_cut(0.2) == 0.1 and ccs_hard_cut(0.1) == 0.3


def test_ccs_same_seed_same_picks_and_balanced_real_fraction():
    rng = np.random.default_rng(0)
    d = rng.random(200)
    labels = (np.arange(200) % 4 != 0).astype(np.int64)  # 1 real in 4
    a = get_strategy("ccs", real_fraction=0.3).select(_scored_state(d, seed=3, pool_labels=labels), 40)
    b = get_strategy("ccs", real_fraction=0.3).select(_scored_state(d, seed=3, pool_labels=labels), 40)
    np.testing.assert_array_equal(a, b)
    assert (labels[a] == 0).sum() == 12  # 30 % of 40
    assert (labels[get_strategy("balanced+ccs").select(_scored_state(d, pool_labels=labels), 40)] == 0).sum() == 20


# -- easy2hard and D2 ----------------------------------------------------------------------------
def test_easy2hard_keeps_easy_at_small_budgets_and_hard_at_large():
    d = np.arange(100, dtype=float)
    e2h = EasyToHard(easy_below=0.1, hard_above=0.7)
    assert sorted(e2h.select(_scored_state(d), 10).tolist()) == list(range(10))
    assert sorted(e2h.select(_scored_state(d), 80).tolist()) == list(range(20, 100))
    mid = e2h.select(_scored_state(d), 40)  # t = 0.5: the window starts half-way along the 60 spare ranks
    assert sorted(mid.tolist()) == list(range(30, 70))


def test_d2_picks_are_spread_on_a_chain():
    x = np.arange(20, dtype=np.float32)[:, None]
    s = _scored_state(np.ones(20), emb=x)
    picks = D2Pruning(neighbours=2).select(s, 8)
    assert len(set(picks.tolist())) == 8
    gaps = np.abs(picks[:, None] - picks[None, :])
    assert not (gaps == 1).any(), sorted(picks.tolist())  # no two picks adjacent
    top = D2Pruning(neighbours=2).select(_scored_state(np.arange(20.0), emb=x), 1)
    assert top.tolist() == [18]  # hardest neighbourhood first (19's neighbours are easier)


def test_knn_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    dist, idx = knn(torch.as_tensor(x), 4, chunk=7)
    full = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(dist.numpy(), np.sort(full, 1)[:, :4], rtol=1e-4, atol=1e-4)


# -- training dynamics ---------------------------------------------------------------------------
def test_forgetting_aum_el2n_on_a_hand_made_history():
    z = np.array([[-1.0, -2.0, -1.0], [2.0, -2.0, -1.0], [-1.0, -2.0, -1.0], [3.0, -2.0, -1.0]])
    y = np.array([1, 0, 1])
    s = scores_from_logits(z, y, early=0.5)
    assert s["forgetting"].tolist() == [1, 0, 4]  # learned-forgotten once; never forgotten; never learned = T
    assert s["never_learned"].tolist() == [False, False, True]
    np.testing.assert_allclose(s["aum"], [0.75, 2.0, -1.0])
    sig = 1 / (1 + math.exp(2.0))
    np.testing.assert_allclose(s["el2n"][1], math.sqrt(2) * sig)  # first half: checkpoints 0, 1
    p0 = 1 / (1 + np.exp(-np.array([-1.0, 2.0])))
    np.testing.assert_allclose(s["el2n"][0], (math.sqrt(2) * (1 - p0)).mean())
    np.testing.assert_allclose(s["confidence"][1], 1 - sig)
    assert s["variability"][1] == pytest.approx(0.0) and s["variability"][0] > 0.3
    np.testing.assert_allclose(s["correctness"], [0.5, 1.0, 0.0])


def test_group_folds_keep_groups_whole():
    groups = np.repeat(np.arange(9), 4)
    f = group_folds(groups, 3, seed=0)
    assert all(len(set(f[groups == g])) == 1 for g in range(9))
    assert sorted(np.bincount(f).tolist()) == [12, 12, 12]


# -- group cap -----------------------------------------------------------------------------------
def _grouped_state(n_lab: int = 0) -> SelectionState:
    """10 groups × 3 videos × 4 frames."""
    n = 120
    lab = np.zeros(n, bool)
    lab[:n_lab] = True
    rng = np.random.default_rng(0)
    return SelectionState.build(rng.normal(size=(n, 4)).astype(np.float32), rng.random(n), lab, seed=1,
                                groups=np.arange(n) // 12, videos=np.arange(n) // 4, reasons={})


@pytest.mark.parametrize("inner", ["random", "entropy", "kcenter", "ccs"])
def test_group_cap_holds(inner):
    s = _grouped_state()
    picks = get_strategy(f"groupcap+{inner}", max_per_group=2, max_per_video=1).select(s, 20)
    assert len(set(picks.tolist())) == 20
    vids, groups = s.videos[picks], s.groups[picks]
    assert np.bincount(vids.astype(int)).max() == 1  # one frame per video: near-duplicates count once
    assert all(len(set(vids[groups == g])) <= 2 for g in set(groups.tolist()))
    assert len(set(groups.tolist())) == 10


def test_group_cap_counts_labelled_rows_and_relaxes_instead_of_underfilling():
    s = _grouped_state(n_lab=4)  # video 0 of group 0 already labelled
    picks = get_strategy("groupcap+random", max_per_group=1).select(s, 9)
    assert 0 not in set(s.groups[picks].tolist())  # group 0 is full
    picks = get_strategy("groupcap+random", max_per_group=1).select(_grouped_state(), 25)
    assert len(set(picks.tolist())) == 25  # more than 10 groups × 1 video: caps grow


# -- frequency features, ProbCover, cold start ---------------------------------------------------
def _smooth_and_artefact(n: int = 40, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random images; half of them carry a faint checkerboard (an up-sampling artefact)."""
    import cv2

    rng = np.random.default_rng(seed)
    imgs = []
    for _ in range(n):
        small = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
        imgs.append(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))
    x = np.stack(imgs)
    y = np.arange(n) % 2
    checker = ((np.indices((size, size)).sum(0) % 2) * 2 - 1)[None, :, :, None] * 6.0
    x[y == 1] += checker
    return np.clip(x, 0, 255).astype(np.uint8), y


def test_frequency_features_separate_a_high_frequency_artefact():
    from sklearn.linear_model import LogisticRegression

    x, y = _smooth_and_artefact()
    spec = azimuthal_spectrum(x, bins=16)
    assert spec.shape == (40, 16) and spec.min() >= 0 and spec.max() <= 1
    assert spec[y == 1, -1].mean() > spec[y == 0, -1].mean() + 0.05  # the corner (diagonal Nyquist) lights up
    assert log_dct_stats(x).shape == (40, 64)
    f = frequency_features(x, bins=16, dct=True)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-4)
    train = np.arange(40) % 4 < 2  # 20 labels, both classes
    clf = LogisticRegression(max_iter=500).fit(f[train], y[train])
    assert clf.score(f[~train], y[~train]) >= 0.95


def test_purity_radius_and_probcover_cover_both_blobs():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    assert purity_radius(x, np.array([0, 0, 0, 1, 1, 1]), 0.95) == pytest.approx(8.0, rel=1e-5)
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.3, (30, 2)), rng.normal(5, 0.3, (30, 2))]).astype(np.float32)
    s = SelectionState.build(emb, np.full(60, 0.5), np.zeros(60, bool), reasons={})
    picks = ProbCover(clusters=2).select(s, 2)
    assert sorted((picks >= 30).tolist()) == [False, True]
    assert all(s.reasons[int(i)].startswith("probcover") for i in picks)
    assert len(set(ProbCover(clusters=2).select(s, 40).tolist())) == 40  # covered: the rest uniform


class _Seen:
    """A stub strategy that remembers the embeddings it was shown."""

    name = "seen"

    def __init__(self):
        self.emb = None

    def select(self, state, k):
        self.emb = state.embeddings
        return RandomSampling().select(state, k)


def test_coldstart_switches_on_val_auc():
    feats = np.ones((30, 3), np.float32)
    cold, warm = _Seen(), _Seen()
    wrap = ColdStart(warm, cold, threshold=0.7, features=feats)
    s = SelectionState.build(np.zeros((30, 5), np.float32), np.full(30, 0.5), np.zeros(30, bool), reasons={})
    picks = wrap.select(s, 4)  # val AUC unknown: cold, on the label-free features
    assert cold.emb.shape == (30, 3) and warm.emb is None
    assert s.reasons[int(picks[0])].startswith("cold")
    s.val_auc = 0.8
    wrap.select(s, 4)
    assert warm.emb.shape == (30, 5)
    strat = get_strategy("balanced+coldstart+hybrid", cold="probcover", threshold=0.6)
    assert strat.inner.cold.name == "probcover" and strat.inner.threshold == 0.6


@pytest.mark.parametrize("size", [16, 31, 32, 64, 128, 224])
def test_radial_bins_cover_every_pixel_at_common_sizes(size):
    """The corner pixel once rounded one ring past the end at 64 px (IndexError on DFDC crops)."""
    from edgedistal.acquire.frequency import _radial_bins

    _radial_bins.cache_clear()
    m = _radial_bins(size, size, 32)
    assert m.shape == (size * size, 32)
    assert (m > 0).sum(1).tolist() == [1] * (size * size)  # each pixel in exactly one ring
    spec = azimuthal_spectrum(np.random.default_rng(0).integers(0, 255, (2, size, size, 3), np.uint8))
    assert spec.shape == (2, 32) and np.isfinite(spec).all()


def test_chain_walks_wrappers_then_the_warm_strategy_and_features_reach_every_cold_start():
    """One walker (state.chain) for every reader of a wrapper chain: wrappers hand over to
    ``inner``, a cold start to ``warm``; the features go to the cold start, found at any depth."""
    from edgedistal.acquire.coldstart import attach_features, needs_features
    from edgedistal.acquire.state import chain

    strat = get_strategy("groupspread+balanced+coldstart+hybrid", cold="probcover")
    names = [type(n).__name__ for n in chain(strat)]
    assert names[:3] == ["GroupSpread", "Balanced", "ColdStart"] and names[-1] == "Hybrid"
    assert needs_features(strat)
    assert attach_features(strat, np.zeros((4, 2), np.float32))
    assert not needs_features(strat)
    assert not attach_features(get_strategy("balanced+typiclust"), np.zeros((4, 2), np.float32))
