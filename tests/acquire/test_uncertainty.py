"""Uncertainty scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgedistal.acquire import uncertainty as S


def test_binary_probs_expand_and_hand_values():
    p = np.array([0.1, 0.5, 0.8], np.float32)
    assert S.as_probs(p).shape == (3, 2)
    np.testing.assert_allclose(S.least_confidence(p).numpy(), [0.1, 0.5, 0.2], atol=1e-6)
    np.testing.assert_allclose(S.margin(p).numpy(), [1 - 0.8, 1.0, 1 - 0.6], atol=1e-6)
    h = [-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)), math.log(2), -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))]
    np.testing.assert_allclose(S.entropy(p).numpy(), h, atol=1e-6)


def test_multiclass_and_torch_input_agree_with_numpy():
    q = np.array([[0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])
    t = torch.tensor(q)
    np.testing.assert_allclose(S.least_confidence(t).numpy(), [0.3, 0.66], atol=1e-9)
    np.testing.assert_allclose(S.margin(q).numpy(), [1 - 0.5, 1 - 0.01], atol=1e-9)
    assert S.entropy(q)[1] > S.entropy(q)[0]  # near-uniform is more uncertain


def test_bald_disagreement_vs_agreement():
    # two MC samples that disagree (0.1 / 0.9) vs two that agree on 0.5
    mc = np.array([[0.1, 0.5], [0.9, 0.5]])
    b = S.bald(mc).numpy()
    h = lambda x: -(x * math.log(x) + (1 - x) * math.log(1 - x))  # noqa: E731
    np.testing.assert_allclose(b[0], h(0.5) - h(0.1), atol=1e-6)
    assert abs(b[1]) < 1e-6  # aleatoric 0.5 but no disagreement → no information gain


def test_higher_is_more_uncertain_and_table_is_numpy():
    p = np.linspace(0.0, 0.5, 11)
    table = S.uncertainty_table(p)
    assert set(table) == {"least_confidence", "margin", "entropy"}
    for name, v in table.items():
        assert isinstance(v, np.ndarray) and v.dtype == np.float32
        assert np.all(np.diff(v) > 0), name  # monotone in closeness to 0.5


def test_score_by_name_and_bald_needs_mc():
    p = np.array([0.2, 0.6])
    np.testing.assert_allclose(S.score("margin", p).numpy(), S.margin(p).numpy())
    with pytest.raises(ValueError, match="MC"):
        S.score("bald", p)
    with pytest.raises(ValueError, match="unknown"):
        S.score("nope", p)
