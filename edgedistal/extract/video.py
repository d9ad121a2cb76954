"""Frame sampling from videos: N evenly spaced frames, or every k-th frame.

Decoding is the dominant cost of face extraction on a CPU (a 1080p H.264 frame costs more than
running a small face detector on a 640 px copy of it), so we never convert frames we do not keep.
Two ways to reach the wanted frames, chosen per gap size (see ``benchmarks/bench_extract.py``):

* ``grab``: read forward with ``VideoCapture.grab()`` and ``retrieve()`` only kept frames. Every
  frame is still decoded (H.264 has to), but colour conversion and copies are skipped.
* ``seek``: ``CAP_PROP_POS_FRAMES`` jumps to the nearest key frame and decodes from there. It wins
  only when the gap between kept frames is much larger than the key-frame interval.

Problems with a file raise :class:`VideoError` (an :class:`EdgedistalError` with a short
``reason``) so a batch job can record the file in ``failures.csv`` and go on with the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgedistal.errors import EdgedistalError

#: ``auto`` seeks instead of grabbing when the mean gap between kept frames is at least this.
#: Measured at 16 frames/video, one thread (benchmarks/results/extract.md): seeking was 5-7x
#: slower than grabbing on the 300-frame 1080p DFDC clips and about equal on Celeb-DF; at
#: 4 frames it was 2.4x slower on DFDC and 2x faster on Celeb-DF (denser key frames). Key-frame
#: spacing is not visible through OpenCV, so grabbing (bounded cost) is the default and seeking
#: is kept for sparse samples of long videos.
SEEK_MIN_GAP = 300


class VideoError(EdgedistalError):
    """A video that cannot be used: missing, empty, truncated or undecodable."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        super().__init__(
            f"{path}: {reason}",
            "re-download or remove the file; other videos are processed normally",
        )
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """What the container header claims (frame counts of broken files can be wrong)."""

    frames: int
    fps: float
    width: int
    height: int


def sample_indices(n_frames: int, frames: int | None = 16, stride: int | None = None) -> list[int]:
    """Frame indices to keep from a video of ``n_frames`` frames.

    ``frames=N`` takes the middle frame of N equal segments (avoids the first frame, which is
    often a fade-in or black); ``N >= n_frames`` takes every frame. ``stride=k`` takes frames
    0, k, 2k, ... and, if ``frames`` is also given, at most that many of them.
    """
    if n_frames <= 0:
        return []
    if stride is not None:
        if stride < 1:
            raise EdgedistalError(f"stride must be >= 1, got {stride}", "use --stride 1 or more")
        idx = list(range(0, n_frames, stride))
        return idx[:frames] if frames else idx
    if frames is None or frames < 1:
        raise EdgedistalError(f"frames must be >= 1, got {frames}", "use --frames 1 or more")
    if frames >= n_frames:
        return list(range(n_frames))
    centres = (np.arange(frames) + 0.5) * n_frames / frames
    return sorted({int(c) for c in np.floor(centres)})


def _open(path: str | os.PathLike[str]) -> cv2.VideoCapture:
    p = Path(path)
    if not p.exists():
        raise VideoError(p, "file not found")
    if p.stat().st_size == 0:
        raise VideoError(p, "empty file (0 bytes)")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(p, "cannot open video (not a video or unsupported codec)")
    return cap


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Header information of a video; raises :class:`VideoError` for unusable files."""
    cap = _open(path)
    try:
        return _info(cap)
    finally:
        cap.release()


def _info(cap: cv2.VideoCapture) -> VideoInfo:
    return VideoInfo(
        frames=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )


def _iter_grab(cap: cv2.VideoCapture, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    keep = set(wanted)
    last = max(wanted)
    for i in range(last + 1):
        if not cap.grab():
            return  # truncated: the header promised more frames than the stream holds
        if i in keep:
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                yield i, frame


def _iter_seek(cap: cv2.VideoCapture, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    pos = 0  # next frame the decoder will return
    for i in wanted:
        if i != pos:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        pos = i + 1
        if ok and frame is not None:
            yield i, frame


def read_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    method: str = "auto",
    rgb: bool = True,
) -> list[tuple[int, np.ndarray]]:
    """Decode the frames at ``indices`` (sorted, unique) as ``[(index, HxWx3 uint8)]``.

    Frames past the real end of a truncated file are silently missing from the result; a file
    from which no requested frame decodes raises :class:`VideoError`.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return []
    if method == "auto":
        gap = (wanted[-1] - wanted[0]) / max(1, len(wanted) - 1) if len(wanted) > 1 else wanted[0]
        method = "seek" if gap >= SEEK_MIN_GAP else "grab"
    if method not in {"grab", "seek"}:
        raise EdgedistalError(f"unknown frame reading method {method!r}", "use auto, grab or seek")
    cap = _open(path)
    try:
        reader = _iter_grab if method == "grab" else _iter_seek
        out = [
            (i, cv2.cvtColor(f, cv2.COLOR_BGR2RGB) if rgb else f) for i, f in reader(cap, wanted)
        ]
    except cv2.error as exc:
        raise VideoError(path, f"decoder error ({exc})") from exc
    finally:
        cap.release()
    if not out:
        raise VideoError(path, "no frame could be decoded (truncated or corrupt video)")
    return out


def sample_frames(
    path: str | os.PathLike[str],
    frames: int | None = 16,
    stride: int | None = None,
    method: str = "auto",
) -> tuple[VideoInfo, list[tuple[int, np.ndarray]]]:
    """Probe ``path`` and decode the sampled frames (RGB). Raises :class:`VideoError`."""
    cap = _open(path)
    try:
        info = _info(cap)
    finally:
        cap.release()
    if info.frames <= 0:
        raise VideoError(path, "video reports zero frames")
    return info, read_frames(path, sample_indices(info.frames, frames, stride), method=method)
