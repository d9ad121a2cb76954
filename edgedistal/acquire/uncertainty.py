"""Uncertainty scores for acquisition; higher always means more uncertain.

Why one module: strategies, the loop's round log and the report all score the same
way, so there is one vectorised (torch, CPU or CUDA) implementation. Inputs may be
NumPy or torch; a binary detector's fake-probabilities ``[N]`` are expanded to
``[N, 2]`` (``[1 - p, p]``) so binary and multi-class share one code path.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-12

__all__ = [
    "as_probs",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "score",
    "SCORES",
    "uncertainty_table",
]


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()  # fp16 logs lose too much precision near 0/1
    return t


def as_probs(p: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Return class probabilities ``[..., N, C]``; a trailing-less binary ``[N]`` becomes ``[N, 2]``.

    For MC samples pass ``[T, N]`` (binary) or ``[T, N, C]``; use :func:`bald` for those.
    """
    t = _to_tensor(p)
    if t.ndim == 1:
        t = t.clamp(0.0, 1.0)
        return torch.stack([1.0 - t, t], dim=-1)
    return t


def least_confidence(p: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``1 - max_c p_c``: 0 for a certain prediction, 0.5 at a binary coin flip."""
    q = as_probs(p)
    return 1.0 - q.max(dim=-1).values


def margin(p: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``1 - (p_top1 - p_top2)`` so that a small margin scores high (1 = tie)."""
    q = as_probs(p)
    top2 = q.topk(2, dim=-1).values
    return 1.0 - (top2[..., 0] - top2[..., 1])


def entropy(p: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of the class distribution."""
    q = as_probs(p)
    return -(q * (q + _EPS).log()).sum(dim=-1)


def _mc_probs(mc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """MC-dropout samples as ``[T, N, C]``; binary ``[T, N]`` is expanded."""
    t = _to_tensor(mc)
    if t.ndim == 2:
        t = t.clamp(0.0, 1.0)
        t = torch.stack([1.0 - t, t], dim=-1)
    if t.ndim != 3:
        raise ValueError(f"MC probabilities must be [T,N] or [T,N,C], got shape {tuple(t.shape)}")
    return t


def bald(mc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """BALD mutual information ``H[mean_t p_t] - mean_t H[p_t]`` from MC-dropout samples.

    High when the dropout samples disagree (epistemic uncertainty), near zero when all
    samples agree even if they agree on 0.5 (aleatoric noise that labelling won't fix).
    """
    t = _mc_probs(mc)
    mean = t.mean(dim=0)
    h_mean = -(mean * (mean + _EPS).log()).sum(dim=-1)
    mean_h = -(t * (t + _EPS).log()).sum(dim=-1).mean(dim=0)
    return (h_mean - mean_h).clamp_min(0.0)


SCORES = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "bald": bald,
}


def score(name: str, probs: np.ndarray | torch.Tensor, mc: np.ndarray | torch.Tensor | None = None
          ) -> torch.Tensor:
    """Score by name; BALD needs ``mc`` (``[T,N]``), the others use ``probs``."""
    if name not in SCORES:
        raise ValueError(f"unknown uncertainty score {name!r}; choose from {sorted(SCORES)}")
    if name == "bald":
        if mc is None:
            raise ValueError("BALD needs MC-dropout probabilities (mc_dropout > 0)")
        return bald(mc)
    return SCORES[name](probs)


def uncertainty_table(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Least-confidence, margin and entropy as NumPy float32 arrays (for reports/tables)."""
    with torch.no_grad():
        return {
            name: fn(probs).detach().cpu().numpy().astype(np.float32)
            for name, fn in SCORES.items()
            if name != "bald"
        }
