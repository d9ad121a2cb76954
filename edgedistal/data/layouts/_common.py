"""Shared pieces of the layout readers: problems, the per-run context and cheap file checks.

Readers never decode images on ingest (23k JPEGs would take minutes on a small machine); they
only check that a file exists and is not empty. ``verify=True`` decodes later, in one place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedistal.data.manifest import Manifest, sample_id
from edgedistal.errors import EdgedistalError
from edgedistal.utils.safepath import normal

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class Problem:
    """One skipped input: the file (or metadata entry) and why it was skipped."""

    path: str
    reason: str


@dataclass
class LayoutResult:
    """What :func:`read_layout` returns: the manifest, the layout used and what was skipped."""

    manifest: Manifest
    layout: str
    root: Path
    problems: list[Problem]


def media_of(path: str | Path) -> str:
    """``"video"`` for video container extensions, ``"image"`` otherwise."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTS else "image"


@dataclass
class Context:
    """Per-run state handed to a reader: where, which options, and the problems collected."""

    root: Path
    default_source: str
    source: str | None = None
    strict: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, path: str | Path, reason: str) -> None:
        """Record a skipped input; with ``strict`` the first one stops the run."""
        if self.strict:
            raise EdgedistalError(
                f"{path}: {reason}",
                "fix or remove this input, or run without --strict to skip such files",
            )
        self.problems.append(Problem(str(path), reason))

    def usable(self, path: Path, size: int | None = None) -> bool:
        """Cheap readability check (exists, non-empty); records a problem when it fails."""
        if size is None:
            try:
                size = path.stat().st_size
            except OSError as exc:  # missing, a dangling link, a symlink loop, no permission
                why = "file not found" if not os.path.lexists(path) else (
                    f"unreadable link ({exc.strerror or exc})" if os.path.islink(path) else f"unreadable ({exc.strerror})")
                self.problem(path, why)
                return False
        if size <= 0:
            self.problem(path, "empty file (0 bytes)")
            return False
        return True

    def row(
        self,
        path: Path,
        label: int,
        group: str,
        video: str,
        *,
        frame: int = -1,
        method: str = "",
        split: str = "",
        source: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """One manifest record with an absolute path and a location-independent sample_id."""
        src = self.source or source or self.default_source
        path = normal(path)  # absolute and ..-free: manifests never hold climbing paths
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = path.as_posix()
        return {
            "sample_id": sample_id(src, rel, int(frame)),
            "path": str(path),
            "label": int(label),
            "group": str(group),
            "video": str(video),
            "frame": int(frame),
            "source": src,
            "method": method,
            "split": split,
            "media": media_of(path),
            **extra,
        }


def _size(entry: os.DirEntry | Path) -> int | None:
    """Its size, or None where it cannot be stat'ed (dangling link, loop): the reader then
    reports it as a problem row (:meth:`Context.usable`) instead of crashing."""
    try:
        return entry.stat().st_size
    except OSError:
        return None


def list_files(folder: Path, exts: set[str]) -> dict[str, int | None]:
    """``{file name: size}`` of the files in ``folder`` with one of ``exts`` (one scandir);
    links that lead nowhere are listed with size None."""
    out: dict[str, int | None] = {}
    with os.scandir(folder) as it:
        for entry in it:
            if os.path.splitext(entry.name)[1].lower() not in exts:
                continue
            try:
                usable = entry.is_file() or entry.is_symlink()
            except OSError:  # a symlink loop
                usable = True
            if usable:
                out[entry.name] = _size(entry)
    return out


def walk_files(folder: Path, exts: set[str]) -> list[tuple[Path, int | None]]:
    """All files below ``folder`` (any depth, sorted) with one of ``exts`` and their sizes."""
    found: list[tuple[Path, int | None]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                p = Path(dirpath) / name
                found.append((p, _size(p)))
    return found


_FRAME_SUFFIX = re.compile(r"^(?P<prefix>.+?)[_\-.](?:frame|fr|f)?\d+$", re.IGNORECASE)
_CLASS_WORDS = {"real", "fake", "image", "img", "frame", "face", "easy", "mid", "hard"}


def video_prefix(stem: str) -> str:
    """The video-ish prefix of a frame file name, or the stem itself.

    ``vid12_003`` → ``vid12``; ``clip-frame0042`` → ``clip``. A prefix that is only a class or
    generic word (``real_00001``, ``img_7``) is not an identity, so the full stem is kept —
    otherwise every real image would collapse into one group.
    """
    m = _FRAME_SUFFIX.match(stem)
    if not m:
        return stem
    prefix = m.group("prefix")
    if prefix.lower() in _CLASS_WORDS or prefix.isdigit():
        return stem
    return prefix


SPLIT_ALIASES = {
    "": "",
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def normalise_split(value: object) -> str | None:
    """Map split spellings onto ``train/val/test/""``; None when unknown."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return SPLIT_ALIASES.get(str(value).strip().lower())
