"""Video layouts: ``dfdc``, ``ffpp`` (FaceForensics++), ``celebdf`` and ``dfd``.

Each produces ONE ROW PER VIDEO (``frame=-1``, ``path`` = the video file, ``media="video"``);
``edgedistal extract`` later turns a video row into face-crop frame rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgedistal.data.layouts._common import VIDEO_EXTS, Context, list_files
from edgedistal.data.manifest import label_from_text
from edgedistal.errors import EdgedistalError

# -- dfdc ----------------------------------------------------------------------------------------


def dfdc_parts(root: Path) -> list[Path]:
    """Folders holding a DFDC ``metadata.json``: ``root`` itself or ``dfdc_train_part_*``."""
    if (root / "metadata.json").is_file():
        return [root]
    return sorted(
        p.parent for p in root.glob("*/metadata.json") if p.parent.name.startswith("dfdc")
    )


def read_dfdc(root: Path, ctx: Context) -> list[dict]:
    """DFDC train parts: ``dfdc_train_part_*/metadata.json`` + mp4s.

    Group rule: a FAKE's ``original`` is its source REAL video → group = that video's stem; a
    REAL is its own group. The parts are all DFDC's *training* set, so the json's ``split``
    ("train" everywhere) is kept in the column ``dfdc_split`` rather than as the manifest split.
    """
    parts = dfdc_parts(root)
    if not parts:
        raise EdgedistalError(
            f"{root}: no metadata.json found (looked in SRC and dfdc_train_part_*/)",
            "point SRC at a DFDC train part or at the folder holding dfdc_train_part_* folders",
        )
    rows = []
    for part in parts:
        meta_path = part / "metadata.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EdgedistalError(
                f"{meta_path}: cannot parse metadata.json ({exc})",
                "re-download this part or remove it from SRC",
            ) from exc
        if not isinstance(meta, dict):
            raise EdgedistalError(f"{meta_path}: expected a JSON object of video entries", None)
        on_disk = list_files(part, VIDEO_EXTS)
        for name, entry in sorted(meta.items()):
            path = part / name
            if name not in on_disk:
                ctx.problem(path, "listed in metadata.json but missing")
                continue
            entry = entry if isinstance(entry, dict) else {}
            try:
                label = label_from_text(entry.get("label"), f"{meta_path} [{name}]")
            except EdgedistalError as exc:
                ctx.problem(path, str(exc))
                continue
            if not ctx.usable(path, on_disk[name]):
                continue
            stem = Path(name).stem
            original = Path(entry["original"]).stem if entry.get("original") else ""
            if label == 1 and not original:
                ctx.problem(path, "FAKE without an `original` source video in metadata.json")
                continue
            rows.append(
                ctx.row(
                    path,
                    label,
                    group=original if label == 1 else stem,
                    video=stem,
                    original=original,
                    dfdc_split=str(entry.get("split") or ""),
                    part=part.name,
                )
            )
        for name in sorted(set(on_disk) - set(meta)):
            ctx.problem(part / name, "on disk but not in metadata.json (no label)")
    return rows


# -- FaceForensics++ and DeepFakeDetection -------------------------------------------------------
COMPRESSIONS = ("c23", "c40", "c0", "raw")
DFD_METHOD = "DeepFakeDetection"


def _comp_dirs(seq: Path) -> list[str]:
    return [c for c in COMPRESSIONS if (seq / c / "videos").is_dir()]


def _sequence_dirs(root: Path, dfd: bool) -> list[tuple[Path, int, str]]:
    """(sequence folder, label, method): FF++ uses youtube + FF methods, DFD actors + DFD."""
    out: list[tuple[Path, int, str]] = []
    real = root / "original_sequences" / ("actors" if dfd else "youtube")
    if real.is_dir():
        out.append((real, 0, ""))
    manip = root / "manipulated_sequences"
    if manip.is_dir():
        for m in sorted(p for p in manip.iterdir() if p.is_dir()):
            if (m.name == DFD_METHOD) == dfd:
                out.append((m, 1, m.name))
    return out


def _pick_compression(root: Path, seqs: list[tuple[Path, int, str]], wanted: str | None) -> str:
    available = sorted({c for s, _, _ in seqs for c in _comp_dirs(s)}, key=COMPRESSIONS.index)
    if not available:
        raise EdgedistalError(
            f"{root}: no <compression>/videos folders under original_sequences or "
            "manipulated_sequences",
            "expected e.g. original_sequences/youtube/c23/videos/000.mp4",
        )
    if wanted:
        if wanted not in available:
            raise EdgedistalError(
                f"{root}: compression {wanted!r} not present (available: {', '.join(available)})",
                f"pass --compression {available[0]}",
            )
        return wanted
    return "c23" if "c23" in available else available[0]


def _ffpp_splits(root: Path) -> dict[str, str]:
    """Video id → split from the official ``train/val/test.json`` (lists of id pairs)."""
    out: dict[str, str] = {}
    for folder in (root / "splits", root / "dataset" / "splits", root):
        files = {s: folder / f"{s}.json" for s in ("train", "val", "test")}
        if not any(f.is_file() for f in files.values()):
            continue
        for split, f in files.items():
            if not f.is_file():
                continue
            try:
                pairs = json.loads(f.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise EdgedistalError(
                    f"{f}: cannot parse split file ({exc})", "re-download it"
                ) from exc
            for pair in pairs:
                for vid in pair if isinstance(pair, list) else [pair]:
                    out[str(vid)] = split
        break
    return out


def _read_sequences(root: Path, ctx: Context, dfd: bool) -> list[dict]:
    seqs = _sequence_dirs(root, dfd)
    comp = _pick_compression(root, seqs, ctx.options.get("compression"))
    splits = {} if dfd else _ffpp_splits(root)
    rows = []
    for seq, label, method in seqs:
        videos = seq / comp / "videos"
        if not videos.is_dir():
            ctx.problem(videos, f"missing (has: {', '.join(_comp_dirs(seq)) or 'nothing'})")
            continue
        for name, size in sorted(list_files(videos, VIDEO_EXTS).items()):
            path = videos / name
            if not ctx.usable(path, size):
                continue
            stem = Path(name).stem
            group = _dfd_group(stem) if dfd else stem.split("_")[0]
            rows.append(
                ctx.row(
                    path,
                    label,
                    group=group,
                    video=stem,
                    method=method,
                    split=splits.get(group, ""),
                    compression=comp,
                )
            )
    return rows


def looks_like_ffpp(root: Path) -> bool:
    return (
        any(label == 1 for _, label, _ in _sequence_dirs(root, False))
        or (root / "original_sequences" / "youtube").is_dir()
    )


def looks_like_dfd(root: Path) -> bool:
    return bool(_sequence_dirs(root, True))


def read_ffpp(root: Path, ctx: Context) -> list[dict]:
    """FaceForensics++: ``original_sequences/youtube/<comp>/videos/XXX.mp4`` (real) and
    ``manipulated_sequences/<Method>/<comp>/videos/XXX_YYY.mp4`` (fake, method = folder name).

    Group rule: fake ``XXX_YYY`` is target video XXX with YYY's face, so its group is ``XXX``, the
    real video whose frames were manipulated; a real ``XXX`` is group ``XXX``. The official
    ``train/val/test.json`` (pairs of ids, under ``splits/`` or SRC) set ``split`` when present.
    ``--compression`` picks c0/raw/c23/c40 (default c23 when present). DeepFakeDetection and
    original_sequences/actors belong to the ``dfd`` layout and are left out here.
    """
    return _read_sequences(root, ctx, dfd=False)


def _dfd_group(stem: str) -> str:
    """``01__exit_phone_room`` → ``01``; ``01_02__exit_phone_room__X`` → ``01`` (target actor)."""
    return stem.split("__")[0].split("_")[0]


def read_dfd(root: Path, ctx: Context) -> list[dict]:
    """Google DeepFakeDetection in FF++ folders: ``original_sequences/actors`` and
    ``manipulated_sequences/DeepFakeDetection``.

    Group rule: the actor id. A real ``01__scene`` is actor ``01``; a fake ``01_02__scene__hash``
    is actor 01's recording with actor 02's face, so its group is the target actor ``01``.
    """
    return _read_sequences(root, ctx, dfd=True)


# -- Celeb-DF ------------------------------------------------------------------------------------
CELEB_DIRS = {
    "Celeb-real": (0, ""),
    "YouTube-real": (0, ""),
    "Celeb-synthesis": (1, "celeb-synthesis"),
}


def looks_like_celebdf(root: Path) -> bool:
    return any((root / d).is_dir() for d in CELEB_DIRS)


def celebdf_group(folder: str, stem: str) -> str:
    """``idA_idB_NNNN`` → ``idA`` (the identity whose video was manipulated); ``idA_NNNN`` → ``idA``;
    a YouTube-real ``NNNNN`` is its own group. Identities are NOT merged transitively: every
    fake also involves a second identity, and union-finding them would make one giant group."""
    if folder == "YouTube-real":
        return stem
    return stem.split("_")[0]


def _celebdf_test_list(root: Path, ctx: Context) -> dict[str, int]:
    """``folder/name.mp4`` → label from List_of_testing_videos.txt, where **1 = REAL, 0 = FAKE**."""
    path = root / "List_of_testing_videos.txt"
    if not path.is_file():
        return {}
    out: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in {"0", "1"}:
            ctx.problem(
                path, f"line {n}: expected '<1 real|0 fake> <folder>/<video>.mp4', got {line!r}"
            )
            continue
        out[parts[1].strip("/")] = 0 if parts[0] == "1" else 1
    return out


def read_celebdf(root: Path, ctx: Context) -> list[dict]:
    """Celeb-DF (v1/v2): ``Celeb-real/``, ``YouTube-real/`` (real), ``Celeb-synthesis/`` (fake).

    ``List_of_testing_videos.txt`` marks the official test videos (split=test; other videos keep
    split "" so a group split can assign them). Its label convention is inverted (1 = real); a
    line that disagrees with the folder is reported as a problem and the folder wins.
    For groups see :func:`celebdf_group`.
    """
    test = _celebdf_test_list(root, ctx)
    rows = []
    for folder, (label, method) in CELEB_DIRS.items():
        d = root / folder
        if not d.is_dir():
            continue
        for name, size in sorted(list_files(d, VIDEO_EXTS).items()):
            path = d / name
            if not ctx.usable(path, size):
                continue
            rel = f"{folder}/{name}"
            if rel in test and test[rel] != label:
                ctx.problem(
                    path,
                    f"List_of_testing_videos.txt says {'fake' if test[rel] else 'real'}, "
                    f"folder says {'fake' if label else 'real'} (folder kept)",
                )
            stem = Path(name).stem
            rows.append(
                ctx.row(
                    path,
                    label,
                    group=celebdf_group(folder, stem),
                    video=stem,
                    method=method,
                    split="test" if rel in test else "",
                )
            )
    return rows
