"""Acquisition strategies as small swappable objects (after baal / small-text): random,
uncertainty, k-center, BADGE, TypiClust, Cluster-Margin, Hybrid. The state they read is in
:mod:`~edgedistal.acquire.state`, their kernels in :mod:`~edgedistal.acquire.kernels`, the
wrappers (balanced+, groupspread+, paired+) in :mod:`~edgedistal.acquire.wrappers` and the names
in :mod:`~edgedistal.acquire.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from edgedistal.acquire import kernels as K
from edgedistal.acquire import uncertainty as S
from edgedistal.acquire.kernels import gradient_embeddings, k_center_greedy, kmeans, kmeans_pp
from edgedistal.acquire.state import SelectionState


def pool_index(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.flatnonzero(mask)).to(device)


def uncertainty(state: SelectionState, score: str) -> torch.Tensor:
    if score == "bald" and state.mc_probs is None:
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError(
            "the BALD score needs MC-dropout samples of the pool",
            "pass --mc-dropout T (e.g. 10) or choose another score (entropy, margin)",
        )
    return S.score(score, state.probs, state.mc_probs).to(state.device).float()


def _top(values: torch.Tensor, pos: torch.Tensor, k: int) -> torch.Tensor:
    """Top-``k`` of ``values[pos]`` (descending, ties by lower index): returns pool indices."""
    v = values[pos]
    order = torch.sort(v, descending=True, stable=True).indices[:k]
    return pos[order]


@dataclass
class RandomSampling:
    """Uniform over the available pool: the baseline every strategy must beat."""

    name: str = "random"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = np.flatnonzero(state.available())
        perm = torch.randperm(len(pos), generator=state.generator).numpy()
        return pos[perm[: min(k, len(pos))]]


@dataclass
class TopUncertainty:
    """The ``k`` most uncertain points by ``score`` (least_confidence, margin, entropy, bald)."""

    score: str = "entropy"
    name: str = "uncertainty"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = pool_index(state.available(), state.device)
        return _top(uncertainty(state, self.score), pos, k).cpu().numpy()


@dataclass
class KCenterGreedy:
    """Core-set: the farthest-first traversal from the labelled set in embedding space."""

    name: str = "kcenter"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = pool_index(state.available(), state.device)
        centers = state.embeddings[pool_index(state.labelled, state.device)]
        picks = k_center_greedy(state.embeddings[pos], k, centers)
        return pos.cpu().numpy()[picks]


@dataclass
class Badge:
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings."""

    name: str = "badge"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        g = state.grad_embeddings
        if g is None:
            g = gradient_embeddings(state.embeddings, state.probs)
        pos = pool_index(state.available(), state.device)
        picks = kmeans_pp(g.to(state.device)[pos], k, state.generator)
        return pos.cpu().numpy()[picks]


@dataclass
class TypiClust:
    """TypiClust (Hacohen et al. 2022): cluster into |L|+k, pick the most typical point of the
    largest clusters that hold no labelled point. Good at tiny budgets (cold start)."""

    neighbours: int = 20
    max_clusters: int = 5000
    name: str = "typiclust"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        avail = state.available()
        n_clusters = min(int(state.labelled.sum()) + k, self.max_clusters, state.n)
        assign, _ = kmeans(state.embeddings, n_clusters, state.generator)
        a = assign.cpu().numpy()
        by_cluster = np.argsort(a, kind="stable")
        starts = np.searchsorted(a[by_cluster], np.arange(n_clusters + 1))
        covered = np.zeros(n_clusters, bool)
        covered[a[state.labelled]] = True
        sizes = np.bincount(a[avail], minlength=n_clusters)
        # largest uncovered first; covered clusters afterwards (in size order) if still short
        order = sorted(np.flatnonzero(sizes).tolist(), key=lambda c: (covered[c], -sizes[c], c))
        taken = np.zeros(state.n, bool)
        typical: dict[int, np.ndarray] = {}
        picks: list[int] = []
        while len(picks) < k:
            before = len(picks)
            for c in order:
                if len(picks) >= k:
                    break
                members = by_cluster[starts[c] : starts[c + 1]]
                if c not in typical:
                    typical[c] = self._typicality(state, members)
                ok = avail[members] & ~taken[members]
                if not ok.any():
                    continue
                i = int(members[np.flatnonzero(ok)[np.argmax(typical[c][ok])]])
                picks.append(i)
                taken[i] = True
            if len(picks) == before:
                break
        return np.asarray(picks, np.int64)

    def _typicality(self, state: SelectionState, cluster: np.ndarray) -> np.ndarray:
        """1 / mean distance to the ``neighbours`` nearest members of the same cluster."""
        x = state.embeddings
        ref = x[torch.from_numpy(cluster).to(state.device)].float()
        m = min(self.neighbours + 1, len(cluster))
        out = np.empty(len(cluster))
        rn = ref.pow(2).sum(1)
        rows = max(1, K.BLOCK_ELEMS["cuda" if ref.device.type == "cuda" else "cpu"] // len(cluster))
        for s in range(0, len(cluster), rows):
            q = ref[s : s + rows]
            d = (rn[s : s + rows, None] + rn[None] - 2 * q @ ref.T).clamp_min(0).sqrt()
            near = d.topk(m, largest=False).values[:, 1:] if m > 1 else d
            out[s : s + rows] = (1.0 / (near.mean(1) + 1e-8)).cpu().numpy()
        return out


@dataclass
class ClusterMargin:
    """Cluster-Margin (Citovsky et al. 2021): take the ``beta·k`` lowest-margin points, then
    round-robin over their clusters, smallest cluster first. k-means stands in for the paper's
    HAC, which does not scale to millions of frames."""

    beta: float = 10.0
    n_clusters: int = 0  # 0: max(k, 2·sqrt(candidates))
    name: str = "cluster_margin"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = pool_index(state.available(), state.device)
        cand = _top(uncertainty(state, "margin"), pos, max(k, int(self.beta * k)))
        nc = self.n_clusters or max(k, int(2 * np.sqrt(len(cand))))
        assign, _ = kmeans(state.embeddings[cand], nc, state.generator)
        a = assign.cpu().numpy()
        cand_np = cand.cpu().numpy()
        buckets: dict[int, list[int]] = {}
        for j in np.argsort(a, kind="stable"):
            buckets.setdefault(int(a[j]), []).append(int(cand_np[j]))
        for c in buckets:  # random order inside a cluster
            perm = torch.randperm(len(buckets[c]), generator=state.generator).numpy()
            buckets[c] = [buckets[c][p] for p in perm]
        order = sorted(buckets, key=lambda c: (len(buckets[c]), c))
        picks: list[int] = []
        depth = 0
        while len(picks) < min(k, len(cand_np)):
            for c in order:
                if depth < len(buckets[c]) and len(picks) < k:
                    picks.append(buckets[c][depth])
            depth += 1
        return np.asarray(picks, np.int64)


@dataclass
class Hybrid:
    """Uncertainty × diversity (the default): keep the ``beta·k`` most uncertain available
    points, then k-center greedy among them, away from the labelled set. Uncertainty alone
    picks near-duplicate frames of one hard video; diversity alone ignores the boundary.

    When groups are known, the pre-filter keeps at most ``max(beta, beta·k / groups)``
    candidates per group (its most uncertain frames), so one hard video cannot fill it.
    """

    beta: float = 4.0
    score: str = "entropy"
    group_aware: bool = True
    name: str = "hybrid"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = pool_index(state.available(), state.device)
        m = max(k, int(np.ceil(self.beta * k)))
        unc = uncertainty(state, self.score)
        if self.group_aware and state.groups is not None:
            cand = _top_per_group(unc, pos, m, state.groups, self.beta)
        else:
            cand = _top(unc, pos, m)
        centers = state.embeddings[pool_index(state.labelled, state.device)]
        picks = k_center_greedy(state.embeddings[cand], k, centers)
        return cand.cpu().numpy()[picks]


def _top_per_group(values: torch.Tensor, pos: torch.Tensor, m: int, groups: np.ndarray, beta: float) -> torch.Tensor:
    """Top-``m`` of ``values[pos]`` keeping at most ``cap`` per group (cap grows if groups are few)."""
    order = torch.sort(values[pos], descending=True, stable=True).indices
    ranked = pos[order].cpu().numpy()
    codes = pd.factorize(pd.Series(groups[ranked]), sort=False)[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 1
    cap = max(int(np.ceil(beta)), int(np.ceil(m / n_groups)))
    within = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    keep = ranked[within < cap][:m]
    return torch.from_numpy(keep).to(pos.device)
