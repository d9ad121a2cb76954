"""Cold start for active learning: ProbCover and a switch from label-free coverage to uncertainty.

A detector trained on a small seed ranks its own blind spots (on DFDC dev, uncertainty picks
from a 5 % seed lost to random). Until the learner is good enough, picks should cover a
*label-free* embedding (frequency features, thumbnails, a self-supervised model); after that,
uncertainty × diversity. :class:`ColdStart` makes that switch on the learner's val AUC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from edgedistal.acquire.kernels import kmeans, knn, min_sq_dist
from edgedistal.acquire.state import SelectionState, Strategy, chain


def purity_radius(x: torch.Tensor, labels: np.ndarray, purity: float = 0.95) -> float:
    """The largest δ at which at least ``purity`` of the δ-balls around the rows of ``x`` hold a
    single pseudo-label: a ball is pure iff its centre's nearest other-label row lies beyond δ,
    so δ is just below the (1 − purity) quantile of those distances (exact, no grid search)."""
    d_other = np.full(len(labels), np.inf)
    for c in np.unique(labels):
        inside = torch.from_numpy(np.flatnonzero(labels == c)).to(x.device)
        outside = torch.from_numpy(np.flatnonzero(labels != c)).to(x.device)
        if len(outside) == 0:
            continue
        d_other[labels == c] = min_sq_dist(x[inside], x[outside]).sqrt().cpu().numpy()
    d = np.sort(d_other[np.isfinite(d_other)])
    if len(d) == 0:
        return math.inf
    m = min(int(math.floor(len(d) * (1.0 - purity))), len(d) - 1)
    return float(d[m]) * (1.0 - 1e-6)  # strictly below: rows at exactly d[m] stay pure


@dataclass
class ProbCover:
    """ProbCover (Yehuda et al., NeurIPS 2022): greedy maximum coverage of δ-balls.

    δ is the :func:`purity_radius` of ``clusters`` k-means pseudo-labels (on at most ``sample``
    rows); balls are capped at the ``max_degree`` nearest rows to bound memory. Each pick is the
    available row whose ball covers most not-yet-covered rows (labelled rows cover theirs first);
    once everything is covered the rest are uniform. Best at tiny budgets, sensitive to δ.
    """

    purity: float = 0.95
    clusters: int = 20
    delta: float | None = None
    max_degree: int = 100
    sample: int = 20000
    name: str = "probcover"

    def radius(self, state: SelectionState) -> float:
        if self.delta is not None:
            return float(self.delta)
        x = state.embeddings
        if state.n > self.sample:
            sub = torch.randperm(state.n, generator=state.generator)[: self.sample]
            x = x[sub.to(state.device)]
        assign, _ = kmeans(x, self.clusters, state.generator)
        return purity_radius(x, assign.cpu().numpy(), self.purity)

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        avail = state.available()
        k = min(k, int(avail.sum()))
        if k <= 0:
            return np.empty(0, np.int64)
        n = state.n
        delta = self.radius(state)
        dist, nb = knn(state.embeddings, self.max_degree)
        inside = (dist <= delta).cpu().numpy()
        nb = nb.cpu().numpy()
        src = np.concatenate([np.repeat(np.arange(n), inside.sum(1)), np.arange(n)])
        dst = np.concatenate([nb[inside], np.arange(n)])  # every ball holds its centre
        by_src = np.argsort(src, kind="stable")
        src_ptr = np.searchsorted(src[by_src], np.arange(n + 1))
        by_dst = np.argsort(dst, kind="stable")
        dst_ptr = np.searchsorted(dst[by_dst], np.arange(n + 1))

        def ball(i: int) -> np.ndarray:
            return dst[by_src[src_ptr[i] : src_ptr[i + 1]]]

        covered = np.zeros(n, bool)
        for i in np.flatnonzero(state.labelled):
            covered[ball(i)] = True
        gain = np.bincount(src, weights=(~covered[dst]).astype(np.float64), minlength=n)
        free = avail.copy()
        picks: list[int] = []
        reasons: list[str] = []
        while len(picks) < k:
            g = np.where(free, gain, -1.0)
            i = int(np.argmax(g))
            if g[i] <= 0:
                break
            new = ball(i)
            new = new[~covered[new]]
            covered[new] = True
            hit = np.concatenate([src[by_dst[dst_ptr[v] : dst_ptr[v + 1]]] for v in new])
            np.subtract.at(gain, hit, 1.0)
            free[i] = False
            picks.append(i)
            reasons.append(f"probcover: ball of {len(new)} new (delta {delta:.3g})")
        rest = k - len(picks)
        if rest > 0:  # all covered: uniform over what is left (as the paper does)
            left = np.flatnonzero(free)
            perm = torch.randperm(len(left), generator=state.generator).numpy()[:rest]
            picks.extend(left[perm].tolist())
            reasons += ["probcover: all covered, uniform"] * rest
        out = np.asarray(picks, np.int64)
        state.note(out, reasons)
        return out


@dataclass
class ColdStart:
    """Label-free coverage until the learner is trustworthy, then its uncertainty × diversity.

    The rule: a round uses ``cold`` on ``features`` (label-free; the state's own embeddings when
    None) while the learner's val AUC on this round's fit is below ``threshold`` or unknown (the
    seed set, or no val split), else ``warm`` on the learner's embeddings and probabilities. The
    test is per round (no latch), so a resumed run decides exactly as an uninterrupted one.
    """

    warm: Strategy
    cold: Strategy
    threshold: float = 0.75
    features: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"coldstart({self.cold.name}->{self.warm.name}@{self.threshold:g})"

    def is_cold(self, state: SelectionState) -> bool:
        auc = state.val_auc
        return auc is None or math.isnan(auc) or auc < self.threshold

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        auc = state.val_auc
        if self.is_cold(state):
            view = state
            if self.features is not None:
                emb = torch.as_tensor(np.asarray(self.features, np.float32)).to(state.device)
                view = replace(state, embeddings=emb)
            picks = self.cold.select(view, k)
            state.note(picks, f"cold: {self.cold.name} (val AUC {auc:.3f} < {self.threshold:g})", outer=True)
        else:
            picks = self.warm.select(state, k)
            state.note(picks, f"warm: {self.warm.name} (val AUC {auc:.3f} >= {self.threshold:g})", outer=True)
        return picks


def attach_features(strategy: Strategy, features: np.ndarray) -> bool:
    """Give every :class:`ColdStart` in a wrapper chain that has none the label-free ``features``;
    returns whether there was one (the CLI computes features only then)."""
    found = False
    for node in chain(strategy):
        if isinstance(node, ColdStart):
            if node.features is None:
                node.features = features
            found = True
    return found


def needs_features(strategy: Strategy) -> bool:
    """Whether a wrapper chain's first :class:`ColdStart` is still waiting for features."""
    first = next((n for n in chain(strategy) if isinstance(n, ColdStart)), None)
    return first is not None and first.features is None
