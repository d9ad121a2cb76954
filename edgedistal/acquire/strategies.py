"""Acquisition strategies as small swappable objects (after baal / small-text).

Every strategy has one method, ``select(state, k) -> np.ndarray`` of ``k`` distinct pool indices
that are neither labelled nor excluded. Work happens in torch on the embeddings' device (CPU or
CUDA); distances are computed in chunks (``||x||² + ||c||² − 2x·c``), so no N×N matrix is ever
built: a 1M × 512 pool fits on one GPU and 100k × 256 on a laptop. Randomness comes only from
``state.generator`` (a CPU ``torch.Generator``), so one seed gives one selection on any device.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from edgedistal.acquire import scores as S

#: Rows of the pool handled per distance block (≈ rows × D × 2-4 bytes of working memory).
CHUNK = 65536
#: Entries of one rows × centers distance block: 16 MB of fp32 on CPU, 256 MB on a GPU.
BLOCK_ELEMS = {"cpu": 1 << 22, "cuda": 1 << 26}


@dataclass
class SelectionState:
    """What a strategy may look at. Pool-aligned arrays; only ``labels[labelled]`` are known.

    ``candidates`` (optional) further restricts what may be picked *without* counting as
    labelled (used by :class:`Balanced` and :class:`GroupSpread`).
    """

    embeddings: torch.Tensor  # [N, D]
    probs: torch.Tensor  # [N] fake probability
    labelled: np.ndarray  # [N] bool
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    labels: np.ndarray | None = None  # [N] int, −1 where unknown
    groups: np.ndarray | None = None  # [N] any hashable (identity / video)
    mc_probs: torch.Tensor | None = None  # [T, N]
    grad_embeddings: torch.Tensor | None = None  # [N, G]
    candidates: np.ndarray | None = None  # [N] bool
    #: [N] int: every pool row's label, when the dataset being distilled is labelled (it usually
    #: is) and the run is label-aware. ``None`` simulates pure active learning (labels arrive only
    #: for picked rows). Read only by the label-aware wrappers :class:`Balanced` and :class:`Paired`.
    pool_labels: np.ndarray | None = None
    #: [N] source video of each row: :class:`GroupCap` counts a video's near-duplicate frames once.
    videos: np.ndarray | None = None
    #: Pool-aligned per-sample scores (training dynamics: ``aum``, ``el2n``, ``forgetting`` …)
    #: read by the difficulty strategies (:mod:`edgedistal.acquire.difficulty`).
    scores: dict[str, np.ndarray] | None = None
    #: Validation AUC of the learner that produced ``probs`` (NaN: none yet), for :class:`ColdStart`.
    val_auc: float = float("nan")
    #: Sink for why each row was picked (``{row: "ccs:stratum 12/50"}``); shared by the wrappers'
    #: views (``dataclasses.replace`` keeps the same dict), filled by strategies that know a reason.
    reasons: dict[int, str] | None = None

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray | torch.Tensor,
        probs: np.ndarray | torch.Tensor,
        labelled: np.ndarray,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **kw: object,
    ) -> SelectionState:
        """Move NumPy inputs to ``device`` and seed a CPU generator: the usual constructor."""
        dev = torch.device(device)
        emb = torch.as_tensor(embeddings).to(dev, non_blocking=True)
        if dev.type == "cuda" and emb.dtype == torch.float32 and emb.numel() > 64_000_000:
            emb = emb.half()  # 1M × 512 fp16 = 1 GiB; distances stay accurate on unit vectors
        pr = torch.as_tensor(probs).float().to(dev)
        mc = kw.pop("mc_probs", None)
        if mc is not None:
            kw["mc_probs"] = torch.as_tensor(mc).float().to(dev)
        gen = torch.Generator().manual_seed(int(seed))
        return cls(emb, pr, np.asarray(labelled, bool).copy(), gen, **kw)  # type: ignore[arg-type]

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def device(self) -> torch.device:
        return self.embeddings.device

    def available(self) -> np.ndarray:
        """Boolean mask of pickable pool rows."""
        ok = ~self.labelled
        if self.candidates is not None:
            ok &= self.candidates
        return ok

    def note(self, picks: np.ndarray, reason: str | list[str], outer: bool = False) -> None:
        """Record why ``picks`` were taken. The first reason stays (inner strategies are more
        specific); ``outer`` puts a wrapper's context in front of it instead."""
        if self.reasons is None:
            return
        many = isinstance(reason, list)
        for j, i in enumerate(np.asarray(picks, np.int64).tolist()):
            text = reason[j] if many else reason
            old = self.reasons.get(int(i))
            self.reasons[int(i)] = text if old is None else (f"{text}; {old}" if outer else old)

    def with_picked(self, picked: np.ndarray, candidates: np.ndarray | None = None) -> SelectionState:
        """A view where ``picked`` count as labelled (for wrappers that select in parts)."""
        lab = self.labelled.copy()
        lab[np.asarray(picked, np.int64)] = True
        return replace(self, labelled=lab, candidates=candidates)


class Strategy(Protocol):
    name: str

    def select(self, state: SelectionState, k: int) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def _idx(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.flatnonzero(mask)).to(device)


def _sqnorm(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty(x.shape[0], device=x.device, dtype=torch.float32)
    for s in range(0, x.shape[0], CHUNK):
        out[s : s + CHUNK] = x[s : s + CHUNK].float().pow(2).sum(1)
    return out


def min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """``min_c ||x_i − c||²`` for every row of ``x``, in blocks of rows × centers (fp32 out)."""
    chunk = chunk or CHUNK
    out = torch.full((x.shape[0],), float("inf"), device=x.device)
    if centers.shape[0] == 0:
        return out
    xn, cn = _sqnorm(x), _sqnorm(centers)
    budget = BLOCK_ELEMS["cuda" if x.device.type == "cuda" else "cpu"]
    cblock = max(1, min(centers.shape[0], budget // max(1, min(chunk, x.shape[0]))))
    for s in range(0, x.shape[0], chunk):
        xs = x[s : s + chunk]
        best = out[s : s + chunk]
        for c in range(0, centers.shape[0], cblock):
            cs = centers[c : c + cblock].to(xs.dtype)
            d = xn[s : s + chunk, None] + cn[None, c : c + cblock] - 2.0 * (xs @ cs.T).float()
            best = torch.minimum(best, d.min(dim=1).values)
        out[s : s + chunk] = best
    return out.clamp_min_(0.0)


def knn(x: torch.Tensor, k: int, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest other rows of every row of ``x``: ``(distances [N,k], indices [N,k])``,
    Euclidean, ascending; blocks of rows × N so no N×N matrix is kept (D2's graph, ProbCover)."""
    n = x.shape[0]
    k = max(0, min(k, n - 1))
    dist = torch.empty((n, k), device=x.device)
    idx = torch.empty((n, k), dtype=torch.long, device=x.device)
    if k == 0:
        return dist, idx
    xn = _sqnorm(x)
    budget = BLOCK_ELEMS["cuda" if x.device.type == "cuda" else "cpu"]
    rows = max(1, min(chunk or CHUNK, budget // max(1, n)))
    for s in range(0, n, rows):
        xs = x[s : s + rows]
        d = (xn[s : s + rows, None] + xn[None] - 2.0 * (xs @ x.T).float()).clamp_min_(0.0)
        d[torch.arange(len(xs), device=x.device), torch.arange(s, s + len(xs), device=x.device)] = float("inf")
        v, j = d.topk(k, dim=1, largest=False)
        dist[s : s + rows], idx[s : s + rows] = v.sqrt(), j
    return dist, idx


def _update(min_d: torch.Tensor, x: torch.Tensor, xn: torch.Tensor, i: int) -> None:
    """``min_d ← min(min_d, ||x − x_i||²)``: one matrix-vector product, no N×D temporary."""
    c = x[i]
    d = xn + xn[i] - 2.0 * (x @ c).float()
    torch.minimum(min_d, d, out=min_d)


def k_center_greedy(
    x: torch.Tensor, k: int, centers: torch.Tensor | None = None, first: int | None = None
) -> np.ndarray:
    """Core-set greedy (Sener & Savarese 2018): repeatedly take the point farthest from all centers.

    ``x`` holds the candidates, ``centers`` the already-labelled points. Without centers the
    first pick is ``first`` (default: the point farthest from the candidates' mean).
    Returns positions into ``x``.
    """
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.int64)
    xn = _sqnorm(x)
    picks = torch.empty(k, dtype=torch.long)
    if centers is not None and centers.shape[0] > 0:
        min_d = min_sq_dist(x, centers)
        start = 0
    else:
        if first is None:
            mean = x.float().mean(0, keepdim=True).to(x.dtype)
            first = int(min_sq_dist(x, mean).argmax())
        min_d = torch.full((n,), float("inf"), device=x.device)
        picks[0] = first
        _update(min_d, x, xn, first)
        min_d[first] = -1.0
        start = 1
    # argmax on device, one scalar sync per pick; .item() is the only host round trip
    for j in range(start, k):
        i = int(min_d.argmax())
        picks[j] = i
        _update(min_d, x, xn, i)
        min_d[i] = -1.0
    return picks.numpy()


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator, first: int | None = None) -> np.ndarray:
    """k-means++ seeding (D² sampling) over the rows of ``x``; positions into ``x``.

    Sampling draws a CPU uniform and searches the cumulative D² on ``x``'s device, so the
    result depends on the generator only, not on the device's RNG.
    """
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.int64)
    xn = _sqnorm(x)
    first = int(xn.argmax()) if first is None else first  # BADGE: largest gradient first
    picks = [first]
    min_d = torch.full((n,), float("inf"), device=x.device)
    _update(min_d, x, xn, first)
    min_d[first] = 0.0
    for _ in range(1, k):
        w = min_d.clamp_min(0).double()
        cum = torch.cumsum(w, 0)
        total = float(cum[-1])
        if total <= 0:  # all remaining points coincide with centers: fall back to uniform
            taken = torch.zeros(n, dtype=torch.bool, device=x.device)
            taken[torch.tensor(picks, device=x.device)] = True
            rest = torch.nonzero(~taken).flatten()
            j = int(torch.randint(len(rest), (1,), generator=generator))
            i = int(rest[j])
        else:
            u = float(torch.rand(1, generator=generator, dtype=torch.float64)) * total
            i = int(torch.searchsorted(cum, torch.tensor([u], dtype=cum.dtype, device=cum.device)))
            i = min(i, n - 1)
            while float(w[i]) <= 0 and i > 0:  # never re-pick a center
                i -= 1
        picks.append(i)
        _update(min_d, x, xn, i)
        min_d[i] = 0.0
    return np.asarray(picks, np.int64)


def kmeans(
    x: torch.Tensor, n_clusters: int, generator: torch.Generator, iters: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd k-means with k-means++ init (on a subsample of large pools); chunked assignment
    sized so one rows × clusters block stays within :data:`BLOCK_ELEMS`. Returns (assign, centers)."""
    n = x.shape[0]
    n_clusters = max(1, min(n_clusters, n))
    init_src = x
    sub_n = max(10 * n_clusters, 10000)
    if n > sub_n:
        sub = torch.randperm(n, generator=generator)[:sub_n]
        init_src = x[sub.to(x.device)]
    seeds = torch.from_numpy(kmeans_pp(init_src, n_clusters, generator)).to(x.device)
    centers = init_src[seeds].float()
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    rows = max(1, min(CHUNK, BLOCK_ELEMS["cuda" if x.device.type == "cuda" else "cpu"] // n_clusters))
    xn = _sqnorm(x)
    for _ in range(iters):
        cn = centers.pow(2).sum(1)
        ct = centers.to(x.dtype).T
        for s in range(0, n, rows):
            d = xn[s : s + rows, None] + cn[None] - 2.0 * (x[s : s + rows] @ ct).float()
            assign[s : s + rows] = d.argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, x.float())
        counts = torch.bincount(assign, minlength=n_clusters).float()
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
        done = torch.allclose(new, centers, atol=1e-6)
        centers = new
        if done:
            break
    return assign, centers


def gradient_embeddings(emb: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """BADGE embedding of a binary logistic head: ``(p − ŷ)·[emb, 1]`` with ``ŷ = 1[p ≥ 0.5]``.

    It is the gradient of the cross-entropy w.r.t. the head's (weights, bias) under the
    model's own hypothesised label: its norm ``min(p, 1−p)`` carries uncertainty, its
    direction carries the features, so k-means++ on it trades off both.
    """
    p = probs.float().to(emb.device)
    g = (p - (p >= 0.5).float())[:, None]
    ones = torch.ones(emb.shape[0], 1, device=emb.device, dtype=emb.dtype)
    return torch.cat([emb, ones], dim=1) * g.to(emb.dtype)


def _uncertainty(state: SelectionState, score: str) -> torch.Tensor:
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


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------
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
        pos = _idx(state.available(), state.device)
        return _top(_uncertainty(state, self.score), pos, k).cpu().numpy()


@dataclass
class KCenterGreedy:
    """Core-set: the farthest-first traversal from the labelled set in embedding space."""

    name: str = "kcenter"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        pos = _idx(state.available(), state.device)
        centers = state.embeddings[_idx(state.labelled, state.device)]
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
        pos = _idx(state.available(), state.device)
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
        rows = max(1, BLOCK_ELEMS["cuda" if ref.device.type == "cuda" else "cpu"] // len(cluster))
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
        pos = _idx(state.available(), state.device)
        cand = _top(_uncertainty(state, "margin"), pos, max(k, int(self.beta * k)))
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
        pos = _idx(state.available(), state.device)
        m = max(k, int(np.ceil(self.beta * k)))
        unc = _uncertainty(state, self.score)
        if self.group_aware and state.groups is not None:
            cand = _top_per_group(unc, pos, m, state.groups, self.beta)
        else:
            cand = _top(unc, pos, m)
        centers = state.embeddings[_idx(state.labelled, state.device)]
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


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------
@dataclass
class Balanced:
    """Split the ``k`` picks evenly over the classes, so a fake-heavy pool (DFDC is ~83 % fake)
    does not starve the real class: the dataset's labels when the run is label-aware
    (``state.pool_labels``), else the *predicted* classes.

    Why: the real class is the scarce one, and its variety is what a from-scratch detector lacks
    most; on DFDC val, a class-balanced random 20 % beat a uniform one by ~0.05 AUC
    (``benchmarks/results/subset_ablation_cpu_20pct.md``).
    """

    inner: Strategy
    threshold: float = 0.5
    #: Share of the picks that go to the real class (0.5: even); a parameter to choose on val per
    #: budget, since the best mix depends on how scarce and varied the real class is.
    real_fraction: float = 0.5

    @property
    def name(self) -> str:
        rf = "" if self.real_fraction == 0.5 else f",real={self.real_fraction:g}"
        return f"balanced({self.inner.name}{rf})"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        if state.pool_labels is not None:
            fake = np.asarray(state.pool_labels) == 1
        else:
            fake = (state.probs >= self.threshold).cpu().numpy()
        avail = state.available()
        classes = [fake & avail, ~fake & avail]
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction}")
        n_real = k // 2 if self.real_fraction == 0.5 else int(round(k * self.real_fraction))
        quota = [k - n_real, n_real]
        have = [int(c.sum()) for c in classes]
        for a, b in ((0, 1), (1, 0)):  # move quota the short class cannot fill
            if have[a] < quota[a]:
                quota[b] += quota[a] - have[a]
                quota[a] = have[a]
        picked = np.empty(0, np.int64)
        cur = state
        for mask, q in zip(classes, quota, strict=True):
            if q <= 0:
                continue
            sub = replace(cur, candidates=mask if state.candidates is None else mask & state.candidates)
            got = self.inner.select(sub, q)
            picked = np.concatenate([picked, got])
            cur = state.with_picked(picked, state.candidates)
        return picked


@dataclass
class GroupSpread:
    """Cap picks per group (identity / video) per round: deepfake pools hold dozens of
    near-identical frames per video, and one hard video should not eat the round."""

    inner: Strategy
    max_per_group: int = 1

    @property
    def name(self) -> str:
        return f"groupspread({self.inner.name})"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        if state.groups is None:
            return self.inner.select(state, k)
        codes = pd.factorize(pd.Series(state.groups), sort=False)[0]
        counts = np.zeros(codes.max() + 1, np.int64)
        picked: list[int] = []
        cap = self.max_per_group
        base = state.available()
        for _ in range(1000):
            need = k - len(picked)
            if need <= 0:
                break
            allowed = base & (counts[codes] < cap)
            allowed[np.asarray(picked, np.int64)] = False
            if not allowed.any():
                if not (base.sum() > len(picked)):
                    break
                cap += self.max_per_group  # every group full: relax rather than under-fill
                continue
            got = self.inner.select(state.with_picked(np.asarray(picked, np.int64), allowed), need)
            if len(got) == 0:
                break
            for i in got:
                if counts[codes[i]] < cap:
                    picked.append(int(i))
                    counts[codes[i]] += 1
        return np.asarray(picked[:k], np.int64)


@dataclass
class Paired:
    """Take each pick together with its counterpart of the same group: a fake with the real
    video it was made from, a real with one of its fakes (the most uncertain).

    Why: a from-scratch detector shown a fake without its source can separate the classes by
    identity, background or compression instead of the manipulation; a pair differs only in the
    manipulation. The inner strategy chooses the anchors (about half of ``k``); pairing fills
    the rest. Label-aware: reads ``state.pool_labels`` (a group's real rows are its sources) and
    falls back to the inner strategy without them.
    """

    inner: Strategy

    @property
    def name(self) -> str:
        return f"paired({self.inner.name})"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        if state.groups is None or state.pool_labels is None:
            return self.inner.select(state, k)
        codes = pd.factorize(pd.Series(state.groups), sort=False)[0]
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(codes.max() + 2))
        free = state.available()
        sources = np.asarray(state.pool_labels) == 0
        unc = _uncertainty(state, "entropy").cpu().numpy()
        picked: list[int] = []

        def take(i: int) -> None:
            picked.append(int(i))
            free[i] = False

        def partner(i: int) -> int | None:
            members = order[starts[codes[i]] : starts[codes[i] + 1]]
            members = members[free[members] & (sources[members] != sources[i])]
            if not len(members):
                return None
            return int(members[0]) if not sources[i] else int(members[np.argmax(unc[members])])

        for _ in range(1000):
            need = k - len(picked)
            if need <= 0:
                break
            view = state.with_picked(np.asarray(picked, np.int64), state.candidates)
            anchors = self.inner.select(view, max(1, (need + 1) // 2))
            if len(anchors) == 0:
                break
            for i in anchors:
                if len(picked) >= k:
                    break
                if not free[i]:
                    continue  # already taken as an earlier anchor's partner
                take(i)
                j = partner(int(i))
                if j is not None and len(picked) < k:
                    take(j)
        return np.asarray(picked[:k], np.int64)


def with_base(strategy: Strategy, base: Strategy) -> Strategy:
    """The same wrapper chain around another base strategy: the loop's random seed set keeps the
    run's class balance and pairing (``balanced+paired+hybrid`` → ``balanced+paired+random``)."""
    inner = getattr(strategy, "inner", None)
    return base if inner is None else replace(strategy, inner=with_base(inner, base))  # type: ignore[type-var]


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
def _lazy(module: str, cls: str):
    """A factory for a strategy defined in another ``acquire`` module (imported on first use,
    so this module keeps no import cycle with the modules that build on its kernels)."""

    def make(**kw: object) -> Strategy:
        import importlib

        return getattr(importlib.import_module(f"edgedistal.acquire.{module}"), cls)(**kw)

    return make


_REGISTRY = {
    "random": RandomSampling,
    "uncertainty": TopUncertainty,
    "least_confidence": lambda **kw: TopUncertainty(score="least_confidence", name="least_confidence", **kw),
    "margin": lambda **kw: TopUncertainty(score="margin", name="margin", **kw),
    "entropy": lambda **kw: TopUncertainty(score="entropy", name="entropy", **kw),
    "bald": lambda **kw: TopUncertainty(score="bald", name="bald", **kw),
    "kcenter": KCenterGreedy,
    "coreset": KCenterGreedy,
    "badge": Badge,
    "typiclust": TypiClust,
    "cluster_margin": ClusterMargin,
    "hybrid": Hybrid,
    "probcover": _lazy("coldstart", "ProbCover"),
    # difficulty strategies: training-dynamics scores in labelled mode, entropy otherwise
    "ccs": _lazy("difficulty", "CCS"),
    "easy2hard": _lazy("difficulty", "EasyToHard"),
    "d2": _lazy("difficulty", "D2Pruning"),
}
STRATEGIES = tuple(_REGISTRY)
WRAPPERS = ("balanced", "groupspread", "groupcap", "paired", "coldstart")
#: Keyword arguments that configure a wrapper rather than the base strategy.
WRAPPER_KW = ("real_fraction", "max_per_group", "max_per_video", "cold", "threshold")


def get_strategy(name: str, *, balanced: bool = False, group_cap: int = 0, **kw: object) -> Strategy:
    """Build a strategy by name; ``balanced`` / ``group_cap > 0`` add the wrappers.

    ``name`` may also carry wrappers as prefixes, e.g. ``"balanced+groupspread+hybrid"`` or
    ``"paired+hybrid"`` (pairing is outermost: it completes whatever the others pick).
    Wrapper settings ride in ``kw``: ``real_fraction`` (balanced; given alone it implies
    balanced), ``max_per_group`` / ``max_per_video`` (groupcap), ``cold`` (the cold-start
    strategy's name, default typiclust) and ``threshold`` (coldstart's val-AUC switch).
    Nesting, inside out: coldstart, groupcap, balanced, groupspread, paired.
    """
    parts = name.lower().replace("-", "_").split("+")
    base = parts[-1]
    bad = [w for w in parts[:-1] if w not in WRAPPERS]
    if base not in _REGISTRY or bad:
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError(
            f"unknown strategy {name!r}",
            f"choose one of {', '.join(STRATEGIES)}, optionally prefixed by {'+, '.join(WRAPPERS)}+",
        )
    wkw = {key: kw.pop(key) for key in WRAPPER_KW if key in kw and kw[key] is not None}
    strat: Strategy = _REGISTRY[base](**kw)
    if "coldstart" in parts[:-1]:
        from edgedistal.acquire.coldstart import ColdStart

        cold = get_strategy(str(wkw.get("cold", "typiclust")))
        strat = ColdStart(strat, cold, **({"threshold": float(wkw["threshold"])} if "threshold" in wkw else {}))
    if "groupcap" in parts[:-1]:  # inside balanced: exact class quotas, caps still span both
        from edgedistal.acquire.groups import GroupCap  # classes (counted over the picks so far)

        caps = {key: int(wkw[key]) for key in ("max_per_group", "max_per_video") if key in wkw}
        strat = GroupCap(strat, **caps)
    if "balanced" in parts[:-1] or balanced or "real_fraction" in wkw:
        strat = Balanced(strat, real_fraction=float(wkw.get("real_fraction", 0.5)))
    if "groupspread" in parts[:-1] or group_cap > 0:  # outermost: the cap spans both classes
        strat = GroupSpread(strat, max(1, group_cap))
    if "paired" in parts[:-1]:
        strat = Paired(strat)
    return strat
