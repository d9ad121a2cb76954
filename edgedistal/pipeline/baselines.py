"""The subsets an evaluation trains on: baselines drawn from the pool (the distilled milestones are
read by :func:`edgedistal.data.distilled.subset_at`).

Every baseline is seeded and returns sorted row positions into the pool. The three baselines a
reviewer expects beside any selection method (DeepCore, arXiv 2204.08499: "random is still a
strong baseline"):

* ``random``     – uniform over samples (or whole groups with ``mode="groups"``);
* ``balanced``   – 50/50 real/fake, uniform inside each class;
* ``stratified`` – the label mix of the method it is compared with, spread over groups: every
  group gives its first sample before any group gives a second (at most ⌈n / groups⌉ each).

Deepfake pools need the last two: DFDC is 83 % fake, and a 50/50 subset beats a uniform one
by ~0.05 AUC on its own, so a method that only fixes the mix must not be credited for selection.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from edgedistal.errors import EdgedistalError

BASELINES = ("random", "balanced", "stratified")


def subset_seed(*parts: object) -> int:
    """A stable seed from names and numbers (``hash()`` changes between Python processes)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def random_subset(groups: np.ndarray, n: int, seed: int, mode: str = "samples") -> np.ndarray:
    """Seeded random row indices (sorted) of size ``n`` from a pool whose rows have ``groups``.

    ``samples`` draws rows uniformly; ``groups`` takes whole groups in random order and cuts at
    most one group to land on exactly ``n`` rows.
    """
    groups = np.asarray(groups).astype(str)
    if n > len(groups):
        raise EdgedistalError(f"cannot draw {n} random samples from a pool of {len(groups)}")
    rng = np.random.default_rng(seed)
    if mode == "samples":
        return np.sort(rng.choice(len(groups), size=n, replace=False))
    codes, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(codes))]
    picked: list[np.ndarray] = []
    left = n
    for k in rng.permutation(len(codes)):
        if left == 0:
            break
        rows = members[k]
        if len(rows) <= left:
            picked.append(rows)
            left -= len(rows)
    if left:  # fill from one not-yet-used group, cut to size
        used = set(np.concatenate(picked).tolist()) if picked else set()
        for k in rng.permutation(len(codes)):
            rows = np.array([r for r in members[k] if r not in used])
            if len(rows) >= left:
                picked.append(rng.choice(rows, size=left, replace=False))
                left = 0
                break
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def class_counts(labels: np.ndarray, n: int, real_share: float) -> tuple[int, int]:
    """(reals, fakes) for a subset of ``n`` with ``real_share`` reals, capped by what the pool has.

    A class the pool cannot fill is taken whole and the rest comes from the other class.
    """
    labels = np.asarray(labels)
    have_real, have_fake = int((labels == 0).sum()), int((labels == 1).sum())
    if n > have_real + have_fake:
        raise EdgedistalError(f"cannot draw {n} samples from a pool of {have_real + have_fake}")
    n_real = min(have_real, int(round(real_share * n)))
    n_fake = min(have_fake, n - n_real)
    return n - n_fake, n_fake


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Seeded 50/50 real/fake subset of size ``n``, uniform inside each class."""
    labels = np.asarray(labels)
    n_real, n_fake = class_counts(labels, n, 0.5)
    rng = np.random.default_rng(seed)
    real = rng.choice(np.flatnonzero(labels == 0), size=n_real, replace=False)
    fake = rng.choice(np.flatnonzero(labels == 1), size=n_fake, replace=False)
    return np.sort(np.concatenate([real, fake]))


def spread_over_groups(rows: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` of ``rows`` chosen round-robin over their groups in random order.

    Every group gives its first (random) member before any group gives its second, so no group
    holds more than ⌈k / groups⌉ picks while others could still give one.
    """
    if k > len(rows):
        raise EdgedistalError(f"cannot spread {k} picks over {len(rows)} rows")
    rows = rng.permutation(rows)
    g = pd.Series(np.asarray(groups)[rows])
    rank = g.groupby(g, sort=False).cumcount().to_numpy()  # position of the row inside its group
    group_order = {name: i for i, name in enumerate(rng.permutation(g.unique()))}
    tiebreak = g.map(group_order).to_numpy()
    order = np.lexsort((tiebreak, rank))
    return rows[order[:k]]


def stratified_subset(labels: np.ndarray, groups: np.ndarray, n: int, real_share: float,
                      seed: int) -> np.ndarray:
    """Seeded subset of ``n`` with ``real_share`` reals, each class spread over its groups."""
    labels = np.asarray(labels)
    groups = np.asarray(groups).astype(str)
    n_real, n_fake = class_counts(labels, n, real_share)
    rng = np.random.default_rng(seed)
    parts = [spread_over_groups(np.flatnonzero(labels == c), groups, k, rng)
             for c, k in ((0, n_real), (1, n_fake)) if k]
    return np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)


def stratified_name(real_share: float) -> str:
    """Arm name of the stratified baseline with this real share, to the nearest percent."""
    return f"stratified-r{int(round(100 * real_share)):02d}"


def carve_val(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(groups)`` into (train, val) by group, val ≈ ``fraction`` of rows."""
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    target = fraction * len(groups)
    val_groups: set[str] = set()
    count = 0
    sizes = pd.Series(groups).value_counts()
    for g in uniq[rng.permutation(len(uniq))]:
        if count >= target or len(val_groups) >= len(uniq) - 1:
            break
        val_groups.add(g)
        count += int(sizes[g])
    is_val = np.isin(groups, list(val_groups))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
