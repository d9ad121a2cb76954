"""Group- and video-aware coverage: cap what one source video or identity may take.

A deepfake and its source real video share identity, scene and lighting, and the frames of one
video are near-duplicates; a strategy that likes one hard video would spend the budget on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgedistal.acquire.state import SelectionState, Strategy


def _codes(values: np.ndarray | None, n: int) -> np.ndarray:
    if values is None:
        return np.arange(n)
    return pd.factorize(pd.Series(values), sort=False)[0]


@dataclass
class GroupCap:
    """At most ``max_per_group`` videos per group and ``max_per_video`` frames per video, counted
    over the whole selection (already-labelled rows included), so coverage spreads over groups.

    The frames of one video count once towards the group's cap: a group's load is the number of
    its distinct picked videos. Without ``state.videos`` every row is its own video; without
    ``state.groups`` the video is the group. When no row fits the caps both grow by their step
    (the budget is filled rather than left short), and the picks say so in their reason.
    """

    inner: Strategy
    max_per_group: int = 2
    max_per_video: int = 1

    @property
    def name(self) -> str:
        return f"groupcap({self.inner.name})"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        if state.groups is None and state.videos is None:
            return self.inner.select(state, k)
        n = state.n
        vid = _codes(state.videos, n)
        grp = _codes(state.groups if state.groups is not None else state.videos, n)
        frames = np.bincount(vid[state.labelled], minlength=vid.max() + 1)
        units = np.zeros(grp.max() + 1, np.int64)
        first = pd.DataFrame({"g": grp[state.labelled], "v": vid[state.labelled]}).drop_duplicates()
        np.add.at(units, first["g"].to_numpy(), 1)
        cap_g, cap_v = self.max_per_group, self.max_per_video
        base = state.available()
        picked: list[int] = []
        taken = np.zeros(n, bool)
        for _ in range(10_000):
            need = k - len(picked)
            if need <= 0 or not (base & ~taken).any():
                break
            allowed = base & ~taken & (frames[vid] < cap_v) & ((frames[vid] > 0) | (units[grp] < cap_g))
            if not allowed.any():
                cap_g += self.max_per_group
                cap_v += self.max_per_video
                continue
            view = state.with_picked(np.asarray(picked, np.int64), allowed)
            got = self.inner.select(view, need)
            if len(got) == 0:
                break
            for i in np.asarray(got, np.int64):
                v, g = vid[i], grp[i]
                if taken[i] or frames[v] >= cap_v or (frames[v] == 0 and units[g] >= cap_g):
                    continue
                if frames[v] == 0:
                    units[g] += 1
                frames[v] += 1
                taken[i] = True
                picked.append(int(i))
                if len(picked) >= k:
                    break
        out = np.asarray(picked[:k], np.int64)
        state.note(out, f"groupcap: ≤{cap_g} videos/group, ≤{cap_v} frames/video")
        return out
