"""Wrappers that reshape any strategy's picks: :class:`Balanced` (class quotas),
:class:`GroupSpread` (picks per group), :class:`Paired` (a fake with its source video);
:func:`with_base` swaps the strategy a wrapper chain wraps."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from edgedistal.acquire.state import SelectionState, Strategy
from edgedistal.acquire.strategies import uncertainty


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
        unc = uncertainty(state, "entropy").cpu().numpy()
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
    run's class balance and pairing (``balanced+paired+hybrid`` → ``balanced+paired+random``).
    It rebuilds the wrappers only (``inner`` links; :func:`~edgedistal.acquire.state.chain`
    walks them): a cold start is a base here, replaced whole."""
    inner = getattr(strategy, "inner", None)
    return base if inner is None else replace(strategy, inner=with_base(inner, base))  # type: ignore[type-var]
