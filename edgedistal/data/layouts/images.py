"""Image layouts: ``folder`` (real/ fake/), ``csv`` (path,label[,...]) and ``dfdc-faces``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from edgedistal.data.layouts._common import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    Context,
    list_files,
    normalise_split,
    video_prefix,
    walk_files,
)
from edgedistal.data.manifest import label_from_text
from edgedistal.errors import EdgedistalError
from edgedistal.utils.safepath import normal

REAL_DIRS = {"real", "reals", "original", "originals", "pristine", "training_real", "0_real"}
FAKE_DIRS = {"fake", "fakes", "manipulated", "deepfake", "deepfakes", "training_fake", "1_fake"}
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _class_dirs(root: Path, max_depth: int = 3) -> list[tuple[Path, int]]:
    """Folders named like real/ or fake/ below ``root`` (shallowest first), with their label."""
    found: list[tuple[Path, int]] = []
    frontier = [root]
    for _ in range(max_depth):
        nxt: list[Path] = []
        for d in frontier:
            for child in sorted(
                p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                name = child.name.lower()
                if name in REAL_DIRS:
                    found.append((child, 0))
                elif name in FAKE_DIRS:
                    found.append((child, 1))
                else:
                    nxt.append(child)
        frontier = nxt
    return found


def looks_like_folder(root: Path) -> bool:
    labels = {label for _, label in _class_dirs(root)} if root.is_dir() else set()
    return labels == {0, 1}


def read_folder(root: Path, ctx: Context) -> list[dict]:
    """real/ and fake/ folders of images, at any depth (``train/real/...`` sets the split).

    Group rule: an image inside a per-video subfolder (``fake/<video>/0001.jpg``) belongs to that
    video; a loose image belongs to its file stem's video-ish prefix (``vid12_003`` → ``vid12``)
    or, when the name has none, to its own stem. The folder layout carries no identity
    information, so a real and its fakes cannot be tied together here: use the csv layout for that.
    """
    dirs = _class_dirs(root)
    if {label for _, label in dirs} != {0, 1}:
        raise EdgedistalError(
            f"{root}: no real/ and fake/ folders found (looked 3 levels deep)",
            "put images under real/ and fake/ subfolders, or pick another --layout",
        )
    rows = []
    for class_dir, label in dirs:
        split = ""
        for part in class_dir.relative_to(root).parts[:-1]:
            split = SPLIT_DIRS.get(part.lower(), split)
        for path, size in walk_files(class_dir, IMAGE_EXTS):
            if not ctx.usable(path, size):
                continue
            sub = path.parent.relative_to(class_dir).parts
            video = "/".join(sub) if sub else video_prefix(path.stem)
            rows.append(ctx.row(path, label, group=video, video=video, split=split))
    return rows


# -- csv -----------------------------------------------------------------------------------------
CSV_NAMES = ("metadata.csv", "manifest.csv", "labels.csv", "dataset.csv")


def find_csv(src: Path) -> Path | None:
    """The csv that describes ``src``: the file itself, or a known name inside the folder."""
    if src.is_file():
        return src if src.suffix.lower() == ".csv" else None
    for name in CSV_NAMES:
        p = src / name
        if p.is_file() and _has_columns(p, {"path", "label"}):
            return p
    return None


def _has_columns(path: Path, needed: set[str]) -> bool:
    try:
        cols = pd.read_csv(path, nrows=0).columns
    except Exception:
        return False
    return needed <= {str(c).strip().lower() for c in cols}


def read_csv(root: Path, ctx: Context) -> list[dict]:
    """A csv with ``path,label`` and optional ``group,video,frame,method,split,source`` columns.

    Paths are relative to the csv's folder or absolute; any other column is kept as is. Group
    rule: the ``group`` column when present, else ``video``, else the path's video-ish prefix.
    """
    csv = ctx.options.get("csv_path") or find_csv(root)
    if csv is None:
        raise EdgedistalError(
            f"{root}: no csv with `path` and `label` columns (looked for {', '.join(CSV_NAMES)})",
            "pass the csv file itself as SRC, or add a metadata.csv with path,label columns",
        )
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise EdgedistalError(
            f"{csv}: cannot read csv ({exc})", "check the file is a valid csv"
        ) from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = {"path", "label"} - set(df.columns)
    if missing:
        raise EdgedistalError(
            f"{csv}: missing column(s) {sorted(missing)} (has {list(df.columns)})",
            "the csv layout needs at least path and label (REAL/FAKE or 0/1) columns",
        )
    base = csv.parent
    known = {
        "path",
        "label",
        "group",
        "video",
        "frame",
        "method",
        "split",
        "source",
        "sample_id",
        "media",
    }
    extras = [c for c in df.columns if c not in known]
    rows, seen = [], {}
    for i, rec in enumerate(df.to_dict("records"), start=2):  # line 1 is the header
        where = f"{csv}:{i}"
        try:
            label = label_from_text(rec["label"], where)
        except EdgedistalError as exc:
            ctx.problem(rec["path"] or where, f"{exc} (line {i})")
            continue
        split = normalise_split(rec.get("split", ""))
        if split is None:
            ctx.problem(
                rec["path"], f"unknown split {rec['split']!r} (line {i}; use train/val/test)"
            )
            continue
        if not str(rec["path"]).strip():  # would otherwise name the csv's own folder
            ctx.problem(where, f"empty path (line {i})")
            continue
        path = normal(rec["path"], base)  # `../../x.jpg` is stored as the file it names
        try:
            frame = int(float(rec.get("frame") or -1))
        except ValueError:
            ctx.problem(path, f"frame {rec['frame']!r} is not a number (line {i})")
            continue
        key = (str(path), frame)
        if key in seen:
            first_line, first_label = seen[key]
            if first_label != label:  # which one is right cannot be guessed: stop, naming both
                names = {0: "real", 1: "fake"}
                raise EdgedistalError(
                    f"{path}: labelled {names[first_label]} on line {first_line} and "
                    f"{names[label]} on line {i} of {csv}",
                    "give each path one label (delete the wrong row)",
                )
            ctx.problem(path, f"duplicate row for this path and frame (line {i})")
            continue
        seen[key] = (i, label)
        if not ctx.usable(path):
            continue
        video = rec.get("video") or (
            path.stem if path.suffix.lower() in VIDEO_EXTS else video_prefix(path.stem)
        )
        group = rec.get("group") or video
        rows.append(
            ctx.row(
                path,
                label,
                group=group,
                video=video,
                frame=frame,
                method=rec.get("method", ""),
                split=split,
                source=rec.get("source") or None,
                **{c: rec[c] for c in extras},
            )
        )
    return rows


# -- dfdc-faces ----------------------------------------------------------------------------------
def looks_like_dfdc_faces(root: Path) -> bool:
    return (root / "faces_224").is_dir() and (root / "metadata.csv").is_file()


def read_dfdc_faces(root: Path, ctx: Context) -> list[dict]:
    """Kaggle "deepfake-faces": ``faces_224/<video>.jpg`` + ``metadata.csv``.

    metadata.csv columns: ``videoname,original_width,original_height,label,original``. Group rule:
    a FAKE's ``original`` is the REAL video it was made from, so its group is that video's stem;
    a REAL's group is its own stem. A real and all fakes made from it land in one group.
    """
    meta = root / "metadata.csv"
    faces = root / "faces_224"
    if not meta.is_file() or not faces.is_dir():
        raise EdgedistalError(
            f"{root}: the dfdc-faces layout needs metadata.csv and faces_224/",
            "point SRC at the folder that holds both (the extracted Kaggle deepfake-faces set)",
        )
    df = pd.read_csv(meta, dtype=str, keep_default_na=False)
    need = {"videoname", "label", "original"}
    if not need <= set(df.columns):
        raise EdgedistalError(
            f"{meta}: missing column(s) {sorted(need - set(df.columns))}",
            "expected videoname,original_width,original_height,label,original",
        )
    sizes = list_files(faces, IMAGE_EXTS)
    by_stem = {Path(name).stem: name for name in sizes}
    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=2):
        stem = Path(rec["videoname"]).stem
        name = by_stem.get(stem)
        if name is None:
            ctx.problem(faces / f"{stem}.jpg", "listed in metadata.csv but missing")
            continue
        try:
            label = label_from_text(rec["label"], f"{meta}:{i}")
        except EdgedistalError as exc:
            ctx.problem(faces / name, str(exc))
            continue
        if not ctx.usable(faces / name, sizes[name]):
            continue
        original = Path(rec["original"]).stem if rec["original"] else ""
        if label == 1 and not original:
            ctx.problem(faces / name, f"FAKE without an `original` source video (line {i})")
            continue
        group = original if label == 1 else stem
        extra = {k: rec[k] for k in ("original_width", "original_height") if k in rec}
        rows.append(
            ctx.row(faces / name, label, group=group, video=stem, original=original, **extra)
        )
    listed = {Path(v).stem for v in df["videoname"]}
    for stem in sorted(set(by_stem) - listed):
        ctx.problem(faces / by_stem[stem], "on disk but not in metadata.csv (no label)")
    return rows
