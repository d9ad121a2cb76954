"""Strategies: valid picks, determinism, chunked k-center = reference, group coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedistal.acquire import kernels as st
from edgedistal.acquire.registry import STRATEGIES, get_strategy
from edgedistal.acquire.state import SelectionState


def _state(n=600, d=16, n_lab=30, seed=0, mc=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    p = rng.random(n).astype(np.float32)
    lab = np.zeros(n, bool)
    lab[rng.choice(n, n_lab, replace=False)] = True
    kw = {"mc_probs": rng.random((4, n))} if mc else {}
    return SelectionState.build(x, p, lab, seed=seed, groups=np.arange(n) // 6, **kw)


@pytest.mark.parametrize("name", [*STRATEGIES, "balanced+hybrid", "groupspread+kcenter", "balanced+groupspread+badge"])
def test_each_strategy_returns_k_distinct_unlabelled(name):
    s = _state()
    picks = get_strategy(name).select(s, 40)
    assert len(picks) == 40
    assert len(set(picks.tolist())) == 40
    assert not s.labelled[picks].any()
    assert picks.min() >= 0 and picks.max() < s.n


@pytest.mark.parametrize("name", ["random", "badge", "typiclust", "cluster_margin", "hybrid"])
def test_same_seed_same_selection_other_seed_differs(name):
    a = get_strategy(name).select(_state(seed=1), 25)
    b = get_strategy(name).select(_state(seed=1), 25)
    np.testing.assert_array_equal(a, b)
    if name in ("random", "badge"):
        s = _state(seed=1)
        s.generator.manual_seed(99)
        assert not np.array_equal(a, get_strategy(name).select(s, 25))


def _kcenter_reference(x: np.ndarray, labelled: np.ndarray, k: int) -> list[int]:
    """Plain farthest-first traversal with direct (x − c)² distances."""
    d = np.full(len(x), np.inf)
    for c in np.flatnonzero(labelled):
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    d[labelled] = -1
    out = []
    for _ in range(k):
        i = int(np.argmax(d))
        out.append(i)
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
        d[i] = -1
    return out


def test_chunked_kcenter_equals_plain_reference(monkeypatch):
    monkeypatch.setattr(st, "CHUNK", 37)  # force many blocks of rows ...
    monkeypatch.setattr(st, "BLOCK_ELEMS", {"cpu": 37 * 5, "cuda": 37 * 5})  # ... and of centers
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 8))
    lab = np.zeros(500, bool)
    lab[rng.choice(500, 45, replace=False)] = True
    s = SelectionState.build(x, np.full(500, 0.5), lab)
    got = get_strategy("kcenter").select(s, 30)
    assert got.tolist() == _kcenter_reference(x, lab, 30)
    # min_sq_dist agrees with the direct formula
    md = st.min_sq_dist(torch.as_tensor(x), torch.as_tensor(x[lab])).numpy()
    ref = ((x[:, None, :] - x[lab][None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(md, ref, rtol=1e-5, atol=1e-5)  # fp32 out


def test_badge_gradient_embedding_and_uncertain_first():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([0.9, 0.3, 0.55])
    g = st.gradient_embeddings(emb, p)
    expect = torch.tensor([[-0.1, 0.0, -0.1], [0.0, 0.3, 0.3], [-0.45, -0.45, -0.45]])
    torch.testing.assert_close(g, expect)
    s = SelectionState.build(emb.numpy(), p.numpy(), np.zeros(3, bool))
    assert get_strategy("badge").select(s, 1).tolist() == [2]  # largest gradient norm first


def test_uncertainty_picks_closest_to_half():
    p = np.array([0.01, 0.49, 0.9, 0.55, 0.2, 0.5])
    lab = np.zeros(6, bool)
    lab[5] = True
    s = SelectionState.build(np.eye(6, dtype=np.float32), p, lab)
    for score in ("entropy", "margin", "least_confidence"):
        assert sorted(get_strategy(score).select(s, 2).tolist()) == [1, 3]


def test_balanced_splits_by_predicted_class_and_groupspread_caps():
    s = _state(n=400, mc=False)
    pred = (s.probs >= 0.5).numpy()
    picks = get_strategy("balanced+entropy").select(s, 20)
    assert pred[picks].sum() == 10
    g = s.groups
    picks = get_strategy("groupspread+entropy").select(s, 30)
    _, counts = np.unique(g[picks], return_counts=True)
    assert counts.max() == 1
    plain = get_strategy("entropy").select(s, 30)
    assert len(np.unique(g[plain])) <= len(np.unique(g[picks]))


def test_groupspread_relaxes_cap_instead_of_underfilling():
    s = _state(n=60, n_lab=0, mc=False)  # 10 groups of 6
    picks = get_strategy("kcenter", group_spread=1).select(s, 25)
    assert len(set(picks.tolist())) == 25
    _, counts = np.unique(s.groups[picks], return_counts=True)
    assert counts.max() == 3  # cap grows 1 → 2 → 3 only as needed


def test_group_coverage_kcenter_and_hybrid_beat_random():
    """On near-duplicate frames per video, diversity covers more identities than random."""
    from edgedistal.acquire.learners import HeadLearner, thumbnails
    from edgedistal.data.synth import SynthConfig, generate

    imgs, table = generate(SynthConfig(n_groups=40, frames_per_video=8, size=32, seed=1))
    feats, groups, labels = thumbnails(imgs), table["group"].to_numpy(), table["label"].to_numpy()
    learner = HeadLearner(feats, labels)
    cover: dict[str, list[int]] = {"random": [], "kcenter": [], "hybrid": []}
    for seed in range(4):
        lab = np.zeros(len(feats), bool)
        lab[np.random.default_rng(seed).choice(len(feats), 10, replace=False)] = True
        sc = learner.update(lab, 1, seed)
        for name in cover:
            s = SelectionState.build(sc.embeddings, sc.probs, lab, seed=seed, groups=groups)
            picks = get_strategy(name).select(s, 30)
            cover[name].append(len(set(groups[np.concatenate([np.flatnonzero(lab), picks])])))
    rnd = np.mean(cover["random"])
    # measured: random ≈ 26, k-center ≈ 33, hybrid ≈ 32 of 40 identities (4 seeds)
    assert np.mean(cover["kcenter"]) >= rnd + 4, cover
    assert np.mean(cover["hybrid"]) >= rnd + 4, cover


def _paired_state(n_lab=0):
    """40 groups of 6: row 0 of each group is its real source, rows 1-5 its fakes."""
    s = _state(n=240, n_lab=n_lab, mc=False)
    s.pool_labels = (np.arange(240) % 6 != 0).astype(np.int64)
    s.sources = s.pool_labels == 0  # test-side shorthand
    return s


@pytest.mark.parametrize("inner", ["random", "hybrid", "kcenter", "entropy"])
def test_paired_takes_every_fake_with_its_source(inner):
    s = _paired_state(n_lab=12)
    picks = get_strategy(f"paired+{inner}").select(s, 40)
    assert len(picks) == 40 and len(set(picks.tolist())) == 40 and not s.labelled[picks].any()
    have = set(s.groups[picks][s.sources[picks]].tolist()) | set(s.groups[s.labelled & s.sources].tolist())
    fakes = picks[~s.sources[picks]]
    alone = sum(g not in have for g in s.groups[fakes])
    assert alone <= 1  # no fake without its real source, but for the last slot when k runs out
    assert s.sources[picks].sum() >= 12  # vs 40/6 ≈ 7 for a plain draw


def test_paired_fills_k_when_sources_are_taken_and_without_metadata():
    s = _paired_state()
    s.labelled[s.sources] = True  # every real already labelled: fakes come alone
    picks = get_strategy("paired+random").select(s, 30)
    assert len(set(picks.tolist())) == 30 and not s.labelled[picks].any()
    s = _state(n=120, n_lab=0, mc=False)  # not label-aware: plain inner strategy
    assert len(get_strategy("paired+hybrid").select(s, 17)) == 17


def test_balanced_uses_the_dataset_labels_when_label_aware():
    s = _paired_state()  # 1 real in 6
    picks = get_strategy("balanced+hybrid").select(s, 30)
    assert (s.pool_labels[picks] == 0).sum() == 15
    s.pool_labels = None  # active-learning simulation: predicted classes instead
    pred = (s.probs >= 0.5).numpy()
    assert pred[get_strategy("balanced+hybrid").select(s, 30)].sum() == 15


def test_unknown_wrapper_is_an_error():
    from edgedistal.errors import EdgedistalError

    with pytest.raises(EdgedistalError, match="unknown strategy"):
        get_strategy("pairs+hybrid")


@pytest.mark.parametrize("name", ["mundig", "mundig_div"])
def test_mundig_peer_balances_labels_and_prefers_dense_points(name):
    pytest.importorskip("lightly_mundig")
    rng = np.random.default_rng(0)
    # a dense blob (typical) and a sparse halo (atypical); 85 % fake as in DFDC
    x = np.concatenate([rng.normal(2, 0.1, (300, 8)), rng.normal(0, 3.0, (300, 8))]).astype(np.float32)
    y = (rng.random(600) < 0.85).astype(int)
    s = SelectionState.build(x, np.full(600, 0.5), np.zeros(600, bool), pool_labels=y)
    picks = get_strategy(name).select(s, 40)
    assert len(set(picks.tolist())) == 40
    assert abs((y[picks] == 0).sum() - 20) <= 1  # ~50/50 despite 15 % real (the engine balances softly)
    if name == "mundig":  # typicality alone: the dense blob wins
        assert (picks < 300).mean() > 0.8


def test_mundig_without_the_package_is_one_line(monkeypatch):
    import builtins

    from edgedistal.errors import EdgedistalError

    real_import = builtins.__import__

    def no_mundig(name, *a, **kw):
        if name == "lightly_mundig":
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mundig)
    with pytest.raises(EdgedistalError, match="lightly-mundig"):
        get_strategy("mundig").select(_state(), 5)


def test_strategy_spec_parses_once_and_refuses_unknown_parts():
    from edgedistal.acquire.registry import StrategySpec
    from edgedistal.errors import EdgedistalError

    spec = StrategySpec.parse("Balanced+GroupCap+CCS")
    assert spec == StrategySpec("ccs", ("balanced", "groupcap")) and spec.name == "balanced+groupcap+ccs"
    assert spec.has("groupcap") and not spec.has("paired")
    assert StrategySpec.parse("cluster-margin").base == "cluster_margin"
    for bad in ("nosuch", "wrapped+random", "balanced+"):
        with pytest.raises(EdgedistalError, match="unknown strategy"):
            StrategySpec.parse(bad)


def test_a_wrapper_setting_without_its_wrapper_is_refused_not_dropped():
    from edgedistal.errors import EdgedistalError

    with pytest.raises(EdgedistalError, match="groupcap\\+ wrapper"):
        get_strategy("balanced+typiclust", max_per_group=3)
    with pytest.raises(EdgedistalError, match="coldstart\\+ wrapper"):
        get_strategy("hybrid", cold="probcover")
    assert get_strategy("groupcap+random", max_per_group=3).max_per_group == 3
    assert get_strategy("random", real_fraction=0.4).real_fraction == 0.4  # alone, it implies balanced
