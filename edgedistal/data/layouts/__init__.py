"""Dataset layout readers: a dataset folder on disk → a :class:`Manifest` plus skipped problems.

Every row gets ``media`` = "image" or "video"; video layouts give one row per video (frame -1).
Groups come from each dataset's own identity/source information (see each reader's docstring),
because deepfakes share an identity with their source video and splits must not leak it.

Fatal input errors (unknown layout, missing SRC or metadata) raise EdgedistalError; per-file
problems (missing, empty, unlabelled files) are collected and skipped, or fatal with ``strict``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgedistal.data.layouts._common import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    Context,
    LayoutResult,
    Problem,
    media_of,
)
from edgedistal.data.layouts.images import (
    find_csv,
    looks_like_dfdc_faces,
    looks_like_folder,
    read_csv,
    read_dfdc_faces,
    read_folder,
)
from edgedistal.data.layouts.videos import (
    dfdc_parts,
    looks_like_celebdf,
    looks_like_dfd,
    looks_like_ffpp,
    read_celebdf,
    read_dfd,
    read_dfdc,
    read_ffpp,
)
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.utils.progress import track

__all__ = [
    "IMAGE_EXTS",
    "LAYOUTS",
    "VIDEO_EXTS",
    "LayoutResult",
    "Problem",
    "detect_layout",
    "media_of",
    "read_layout",
]

#: layout name → reader(root, ctx) -> list of row dicts.
LAYOUTS: dict[str, Callable[[Path, Context], list[dict]]] = {
    "folder": read_folder,
    "csv": read_csv,
    "dfdc-faces": read_dfdc_faces,
    "dfdc": read_dfdc,
    "ffpp": read_ffpp,
    "celebdf": read_celebdf,
    "dfd": read_dfd,
}

#: default ``source`` per layout (None: the folder or csv name).
DEFAULT_SOURCE = {
    "dfdc-faces": "dfdc",
    "dfdc": "dfdc",
    "ffpp": "ffpp",
    "celebdf": "celebdf",
    "dfd": "dfd",
}

#: detection order: most specific first (a csv beats bare real/ fake/ folders next to it).
_DETECT: list[tuple[str, Callable[[Path], bool]]] = [
    ("dfdc-faces", looks_like_dfdc_faces),
    ("dfdc", lambda p: bool(dfdc_parts(p))),
    ("ffpp", looks_like_ffpp),
    ("dfd", looks_like_dfd),
    ("celebdf", looks_like_celebdf),
    ("csv", lambda p: find_csv(p) is not None),
    ("folder", looks_like_folder),
]


def _known() -> str:
    return ", ".join(LAYOUTS)


def _check_src(src: str | Path) -> Path:
    path = Path(src).expanduser()
    if not path.exists():
        raise EdgedistalError(
            f"{path}: dataset not found", "check the SRC path (extract tarballs first)"
        )
    return path.absolute()


def _detect(path: Path) -> tuple[str, Path] | None:
    """(layout, root) for ``path``, also looking one level down into a lone wrapper folder."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv", path.parent
        if path.name == "metadata.json":
            return "dfdc", path.parent
        return None
    for name, test in _DETECT:
        if test(path):
            return name, path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1:  # e.g. an extracted tarball's single top folder
        for name, test in _DETECT:
            if test(subdirs[0]):
                return name, subdirs[0]
    return None


def detect_layout(src: str | Path) -> str:
    """Name of the layout that fits ``src``; raises EdgedistalError listing the known ones."""
    path = _check_src(src)
    found = _detect(path)
    if found is None:
        raise EdgedistalError(
            f"{path}: cannot tell the dataset layout (known layouts: {_known()})",
            "pass --layout NAME, or arrange the data as real/ + fake/ folders or a path,label csv",
        )
    return found[0]


def read_layout(
    src: str | Path,
    layout: str = "auto",
    *,
    strict: bool = False,
    source: str | None = None,
    compression: str | None = None,
    verify: bool = False,
) -> LayoutResult:
    """Read the dataset at ``src`` into a manifest with absolute paths.

    ``layout="auto"`` detects it (see :func:`detect_layout`). ``source`` overrides the dataset
    name. ``compression`` picks the FF++/DFD quality folder. ``verify`` decodes every image (or
    opens every video) and skips unreadable ones — slow, off by default.
    """
    path = _check_src(src)
    if layout != "auto" and layout not in LAYOUTS:
        raise EdgedistalError(f"unknown layout {layout!r}", f"choose one of: auto, {_known()}")
    options: dict = {"compression": compression}
    if layout == "auto":
        found = _detect(path)
        if found is None:
            detect_layout(path)  # raises the explanatory error
            raise AssertionError  # pragma: no cover
        layout, root = found
    else:
        root = path.parent if path.is_file() else path
    if path.is_file():
        if layout == "csv":
            options["csv_path"] = path
        elif not (layout == "dfdc" and path.name == "metadata.json"):
            raise EdgedistalError(
                f"{path}: the {layout} layout reads a folder, not a file", "pass the dataset folder"
            )
    default_source = DEFAULT_SOURCE.get(layout) or (
        path.parent.name if layout == "csv" and path.is_file() else root.name
    )
    ctx = Context(
        root=root, default_source=default_source, source=source, strict=strict, options=options
    )
    rows = LAYOUTS[layout](root, ctx)
    if verify:
        rows = _verify(rows, ctx)
    if not rows:
        first = (
            f" (first problem: {ctx.problems[0].path}: {ctx.problems[0].reason})"
            if ctx.problems
            else ""
        )
        raise EdgedistalError(
            f"{root}: no usable samples found with the {layout} layout{first}",
            "check SRC and --layout; `edgedistal ingest --help` lists the layouts",
        )
    rows.sort(key=lambda r: (r["path"], r["frame"]))
    return LayoutResult(Manifest.from_records(rows), layout, root, ctx.problems)


def _readable(path: str) -> bool:
    import cv2

    if media_of(path) == "video":
        cap = cv2.VideoCapture(path)
        try:
            return bool(cap.isOpened() and cap.read()[0])
        finally:
            cap.release()
    if Path(path).suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(path):
        return False  # OpenCV decodes a truncated JPEG "fine", with a grey lower part
    from edgedistal.data.images import image_problem

    return image_problem(path, reduced=True)[0] is not None


def _jpeg_complete(path: str, tail: int = 64) -> bool:
    """Whether the JPEG ends with its end-of-image marker (some encoders pad a few bytes after)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - tail))
            return b"\xff\xd9" in fh.read()
    except OSError:
        return False


def _verify(rows: list[dict], ctx: Context) -> list[dict]:
    """Decode every file (threads: OpenCV releases the GIL); drop and report unreadable ones."""
    with ThreadPoolExecutor(4) as pool:
        ok = list(track(pool.map(_readable, [r["path"] for r in rows]), len(rows), "verifying"))
    kept = []
    for row, good in zip(rows, ok, strict=True):
        if good:
            kept.append(row)
        else:
            ctx.problem(row["path"], "cannot decode (corrupt or not an image/video)")
    return kept
