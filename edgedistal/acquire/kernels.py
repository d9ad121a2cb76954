"""Distance and clustering kernels the strategies share: chunked squared distances, k-NN,
k-center greedy, k-means++ and Lloyd k-means, BADGE's gradient embeddings.

Work happens in torch on the embeddings' device (CPU or CUDA); distances are computed in chunks
(``||x||² + ||c||² − 2x·c``), so no N×N matrix is ever built: a 1M × 512 pool fits on one GPU
and 100k × 256 on a laptop.
"""

from __future__ import annotations

import numpy as np
import torch

#: Rows of the pool handled per distance block (≈ rows × D × 2-4 bytes of working memory).
CHUNK = 65536
#: Entries of one rows × centers distance block: 16 MB of fp32 on CPU, 256 MB on a GPU.
BLOCK_ELEMS = {"cpu": 1 << 22, "cuda": 1 << 26}


def sqnorm(x: torch.Tensor) -> torch.Tensor:
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
    xn, cn = sqnorm(x), sqnorm(centers)
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
    xn = sqnorm(x)
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
    xn = sqnorm(x)
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
    xn = sqnorm(x)
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
    xn = sqnorm(x)
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
