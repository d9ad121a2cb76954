"""Selection over difficulty: CCS, easy-to-hard by budget, and D2 pruning.

These strategies rank the pool by a per-sample *difficulty* (higher = harder). In labelled
distillation it comes from the proxy's training dynamics (``state.scores``, see
:mod:`edgedistal.acquire.dynamics`); without them (active learning) the current learner's
entropy stands in, which is label-free. Why not simply take the hardest: at high pruning rates
top-k hard selection falls far below random (CCS, Zheng et al. 2023), because it keeps label
noise and leaves the easy regions of the distribution uncovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgedistal.acquire import uncertainty as S
from edgedistal.acquire.kernels import knn
from edgedistal.acquire.state import SelectionState

#: Score columns and the sign that turns them into a difficulty (higher = harder).
DIFFICULTY = {
    "aum": -1.0,  # low margin = hard (very low = likely mislabelled)
    "el2n": 1.0,
    "forgetting": 1.0,
    "confidence": -1.0,
    "variability": 1.0,
    "oof_el2n": 1.0,
}


def difficulty(state: SelectionState, score: str = "aum") -> np.ndarray:
    """``[N]`` float64 difficulty of every pool row; entropy of ``state.probs`` without scores."""
    if state.scores is not None and score in state.scores:
        if score not in DIFFICULTY:
            raise ValueError(f"unknown difficulty score {score!r}; choose from {sorted(DIFFICULTY)}")
        return DIFFICULTY[score] * np.asarray(state.scores[score], np.float64)
    if state.scores is not None and score != "entropy":
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError(
            f"difficulty score {score!r} is not among the pool scores ({', '.join(sorted(state.scores))})",
            f"choose one of {', '.join(sorted(DIFFICULTY))}",
        )
    return S.entropy(state.probs).cpu().numpy().astype(np.float64)


def candidates(state: SelectionState, k: int, score: str) -> tuple[np.ndarray, int, np.ndarray]:
    """The positions a pick can come from, the pick count they allow, and their difficulty."""
    pos = np.flatnonzero(state.available())
    k = min(k, len(pos))
    return pos, k, (difficulty(state, score)[pos] if k > 0 else np.empty(0))


def ccs_hard_cut(keep_fraction: float) -> float:
    """β, the hardest share of the pool dropped before stratifying, by the rate of pruning.

    The rule follows CCS's CIFAR-10 settings (Zheng et al. 2023, AUM): nothing at mild pruning
    (keep ≥ 40 %), 10 % when keeping 15–40 %, 30 % when keeping under 15 %. Harder cuts at
    higher pruning because a small subset cannot afford mislabelled or outlying examples.
    """
    prune = 1.0 - keep_fraction
    if prune < 0.6:
        return 0.0
    return 0.1 if prune < 0.85 else 0.3


def share_budget(sizes: np.ndarray, budget: int) -> np.ndarray:
    """CCS's allocation: visit strata from the smallest, give each ``min(size, left // strata left)``.

    Small strata are taken whole and their unused share passes to the larger ones, so the
    budget covers the score range as evenly as the strata allow. Returns per-stratum counts.
    """
    sizes = np.asarray(sizes, np.int64)
    out = np.zeros_like(sizes)
    order = np.argsort(sizes, kind="stable")
    left = int(budget)
    live = int((sizes > 0).sum())
    for s in order:
        if sizes[s] == 0:
            continue
        take = min(int(sizes[s]), left // max(live, 1))
        out[s] = take
        left -= take
        live -= 1
    return out


@dataclass
class CCS:
    """Coverage-centric coreset selection (Zheng et al., ICLR 2023).

    1. drop the hardest ``beta`` of the available pool (``None``: :func:`ccs_hard_cut` of k / pool);
    2. cut the remaining difficulty range into ``strata`` equal-width bins;
    3. :func:`share_budget` over the bins, uniform sampling inside each.
    """

    score: str = "aum"
    strata: int = 50
    beta: float | None = None
    name: str = "ccs"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos, k, d = candidates(state, k, self.score)
        if k <= 0:
            return np.empty(0, np.int64)
        beta = ccs_hard_cut(k / len(pos)) if self.beta is None else float(self.beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"CCS beta must be in [0, 1), got {beta}")
        n_cut = min(int(round(beta * len(pos))), len(pos) - k)  # never cut below the budget
        order = np.argsort(-d, kind="stable")  # hardest first
        keep = np.sort(order[n_cut:])
        pos, d = pos[keep], d[keep]
        lo, hi = float(d.min()), float(d.max())
        width = (hi - lo) / self.strata if hi > lo else 1.0
        bins = np.minimum(((d - lo) / width).astype(np.int64), self.strata - 1)
        counts = share_budget(np.bincount(bins, minlength=self.strata), k)
        picks: list[np.ndarray] = []
        reasons: list[str] = []
        for b in np.flatnonzero(counts):
            members = pos[bins == b]
            perm = torch.randperm(len(members), generator=state.generator).numpy()
            picks.append(members[perm[: counts[b]]])
            reasons += [f"ccs: stratum {b + 1}/{self.strata} (beta {beta:g})"] * int(counts[b])
        out = np.concatenate(picks)
        state.note(out, reasons)
        return out


@dataclass
class EasyToHard:
    """Keep easy examples at small budgets and hard ones at large (Sorscher et al. 2022).

    The rule: rank the available pool from easiest to hardest and take a window of ``k``
    consecutive ranks whose start slides with the kept fraction ``f = k / pool``: at
    ``f ≤ easy_below`` the ``k`` easiest, at ``f ≥ hard_above`` the ``k`` hardest, in between
    linearly (start = t·(pool − k), t = (f − easy_below) / (hard_above − easy_below)).
    Why: with little data, prototypical examples teach the class; with much, the boundary does.
    """

    score: str = "aum"
    easy_below: float = 0.1
    hard_above: float = 0.7
    name: str = "easy2hard"

    def position(self, keep_fraction: float) -> float:
        """t ∈ [0, 1]: 0 = the easiest window, 1 = the hardest."""
        span = max(self.hard_above - self.easy_below, 1e-9)
        return float(np.clip((keep_fraction - self.easy_below) / span, 0.0, 1.0))

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos, k, d = candidates(state, k, self.score)
        if k <= 0:
            return np.empty(0, np.int64)
        order = np.argsort(d, kind="stable")  # easiest first, ties by index
        t = self.position(k / len(pos))
        start = int(round(t * (len(pos) - k)))
        out = pos[order[start : start + k]]
        state.note(out, f"easy2hard: ranks {start}-{start + k} of {len(pos)} (easiest first)")
        return out


@dataclass
class D2Pruning:
    """D2 pruning (Maharana et al. 2023): difficulty spread over a kNN graph, then greedy picks
    that suppress their neighbours, so the subset is hard *and* covers the embedding space.

    Scores are min-max scaled to [0, 1]; distances are divided by the median kNN distance so
    ``gamma`` is free of the embedding's scale. Forward: ``s_i += Σ_j exp(−γ_f·d_ij)·s_j`` over
    the ``neighbours`` nearest; each pick ``i`` then lowers ``s_j −= exp(−γ_r·d_ij)·s_i`` for its
    neighbours (reverse message passing).
    """

    score: str = "aum"
    neighbours: int = 10
    gamma_forward: float = 1.0
    gamma_reverse: float = 1.0
    name: str = "d2"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos, k, d = candidates(state, k, self.score)
        if k <= 0:
            return np.empty(0, np.int64)
        s = (d - d.min()) / (d.max() - d.min()) if d.max() > d.min() else np.ones_like(d)
        x = state.embeddings[torch.from_numpy(pos).to(state.device)]
        dist, nb = knn(x, self.neighbours)
        dist, nb = dist.cpu().numpy().astype(np.float64), nb.cpu().numpy()
        scale = float(np.median(dist)) if dist.size else 1.0
        dist = dist / (scale if scale > 0 else 1.0)
        w_f, w_r = np.exp(-self.gamma_forward * dist), np.exp(-self.gamma_reverse * dist)
        node = s + (w_f * s[nb]).sum(1) if nb.size else s.copy()
        taken = np.zeros(len(pos), bool)
        out = np.empty(k, np.int64)
        for j in range(k):
            node_masked = np.where(taken, -np.inf, node)
            i = int(np.argmax(node_masked))
            out[j] = i
            taken[i] = True
            if nb.size:
                np.subtract.at(node, nb[i], w_r[i] * node[i])
        picks = pos[out]
        state.note(picks, [f"d2: pick {j + 1} (difficulty {d[i]:.3g})" for j, i in enumerate(out)])
        return picks
