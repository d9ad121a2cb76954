"""Use the detector on new data: images, folders or videos → fake probability per frame and file.

Videos go through the same pipeline as training data (:mod:`edgedistal.extract.run`): frames sampled
evenly (:func:`edgedistal.extract.video.sample_frames`), the largest face detected and cut as a
square with margin at the extract crop size, then resized to the model's input like the image
cache does — so the model sees at inference what it saw in training. A file's probability is the
mean over its frames with a face (the usual video-level aggregation in deepfake benchmarks).
Any backend and precision from :mod:`edgedistal.runtime` runs the crops.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from edgedistal.errors import EdgedistalError
from edgedistal.extract.run import ExtractConfig
from edgedistal.runtime.base import Backend

FILE_COLUMNS = ["file", "media", "frames", "faces", "prob_fake", "prob_max", "verdict", "error"]
FRAME_COLUMNS = ["file", "frame", "face", "det_score", "prob_fake"]


@dataclass(frozen=True)
class PredictConfig:
    """How frames are sampled and faces cut (defaults: those of ``edgedistal extract``)."""

    extract: ExtractConfig = field(default_factory=ExtractConfig)
    threshold: float = 0.5
    batch_size: int = 64

    def validate(self) -> PredictConfig:
        """Refuse settings that would give every file the same verdict, before any model loads."""
        t = self.threshold
        if not (isinstance(t, int | float) and 0.0 <= t <= 1.0):  # also catches nan
            raise EdgedistalError(f"--threshold must be a probability in [0, 1] (got {t})",
                                  "e.g. --threshold 0.5 (mean p(fake) at or above it is FAKE)")
        ex = self.extract
        if ex.stride is None and (ex.frames is None or ex.frames < 1):
            raise EdgedistalError(f"--frames must be >= 1 (got {ex.frames})",
                                  "e.g. --frames 16 (frames sampled evenly per video)")
        if self.batch_size < 1:
            raise EdgedistalError(f"batch size must be >= 1 (got {self.batch_size})", "e.g. 64")
        return self


def collect_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """``(path, media)`` for every image/video given, folders searched recursively (sorted)."""
    from edgedistal.data.layouts._common import IMAGE_EXTS, VIDEO_EXTS, media_of

    out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            out += [(f, media_of(f)) for f in files]
        elif p.is_file():
            out.append((p, media_of(p)))
        else:
            raise EdgedistalError(f"{p}: no such file or folder", "pass images, videos or folders holding them")
    if not out:
        raise EdgedistalError(f"no images or videos in {', '.join(map(str, paths))}",
                              "pass .jpg/.png images, .mp4/.avi/... videos or folders holding them")
    return out


def face_crops(path: Path, media: str, cfg: ExtractConfig, detector: Any,
               size: int) -> Iterator[tuple[int, float | None, np.ndarray | None]]:
    """``(frame, detection score, crop [size,size,3] RGB)`` per sampled frame (crop None: no face)."""
    from edgedistal.extract.faces import crop_face, select_faces
    from edgedistal.extract.run import load_frames

    for frame, image in load_frames(str(path), media, cfg):
        faces = select_faces(detector.detect(image))
        if not faces:
            yield frame, None, None
            continue
        crop = crop_face(image, faces[0].box, cfg.margin, cfg.size)
        if crop.shape[0] != size:
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)
        yield frame, float(faces[0].score), crop


@dataclass
class PredictResult:
    files: pd.DataFrame  # one row per input file
    frames: pd.DataFrame  # one row per sampled frame
    backend: dict[str, str]


def predict_paths(paths: Iterable[str | os.PathLike[str]], backend: Backend, cfg: PredictConfig = PredictConfig(),
                  progress: bool = True) -> PredictResult:
    """Score every image/video under ``paths``; an unreadable file becomes a row with ``error``."""
    from edgedistal.extract.faces import get_detector
    from edgedistal.utils.progress import track

    inputs = collect_inputs(paths)
    detector = get_detector(cfg.extract.detector, **cfg.extract.detector_options())
    files, frames = [], []
    items = track(inputs, total=len(inputs), description="predicting") if progress else inputs
    for path, media in items:
        row: dict[str, Any] = {"file": str(path), "media": media, "frames": 0, "faces": 0, "prob_fake": np.nan,
                               "prob_max": np.nan, "verdict": "no face", "error": ""}
        try:
            got = list(face_crops(path, media, cfg.extract, detector, backend.image_size))
        except EdgedistalError as exc:
            row.update(error=getattr(exc, "reason", str(exc)), verdict="error")
            files.append(row)
            continue
        crops = [c for _, _, c in got if c is not None]
        probs = _infer(backend, np.stack(crops), cfg.batch_size) if crops else np.zeros(0, np.float32)
        it = iter(probs)
        for frame, score, crop in got:
            frames.append({"file": str(path), "frame": frame, "face": crop is not None, "det_score": score,
                           "prob_fake": float(next(it)) if crop is not None else np.nan})
        row.update(frames=len(got), faces=len(crops))
        if len(probs):
            p = float(np.mean(probs))
            row.update(prob_fake=p, prob_max=float(np.max(probs)), verdict="FAKE" if p >= cfg.threshold else "real")
        files.append(row)
    if all(r["error"] for r in files):
        raise EdgedistalError(f"no input could be read ({files[0]['file']}: {files[0]['error']})",
                              "check the files are images/videos OpenCV can decode")
    return PredictResult(pd.DataFrame(files, columns=FILE_COLUMNS), pd.DataFrame(frames, columns=FRAME_COLUMNS),
                         {k: str(v) for k, v in vars(backend.info).items()})


def require_verdicts(result: PredictResult) -> None:
    """Exit 2 when no file got a FAKE/real verdict: a run that decided nothing is not a success."""
    decided = result.files["verdict"].isin(["FAKE", "real"])
    if not decided.any():
        counts = result.files["verdict"].value_counts().to_dict()
        detail = ", ".join(f"{v} {k}" for k, v in counts.items())
        raise EdgedistalError(f"no file got a verdict ({detail})",
                              "check the inputs show faces (or pass --detector none for face crops)")


def _infer(backend: Backend, crops: np.ndarray, batch: int) -> np.ndarray:
    out = [backend.infer(np.ascontiguousarray(crops[s : s + batch]))[0] for s in range(0, len(crops), batch)]
    return np.concatenate(out).astype(np.float32)


def output_paths(out: str | os.PathLike[str]) -> list[Path]:
    """The files ``--out`` writes: ``results.json``, or ``results.csv`` + ``results.frames.csv``."""
    out = Path(out)
    if out.suffix.lower() == ".json":
        return [out]
    if out.suffix.lower() != ".csv":
        raise EdgedistalError(f"{out}: unknown output format", "use --out results.csv or results.json")
    return [out, out.with_name(out.stem + ".frames.csv")]


def _ours(path: Path) -> bool:
    """An earlier predict output: our csv header, or a JSON document with our keys."""
    from edgedistal.utils.io import looks_like_json, read_json
    from edgedistal.utils.safepath import csv_header_is

    if path.suffix.lower() == ".json":
        try:
            doc = read_json(path) if looks_like_json(path) else None
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and {"backend", "files", "frames"} <= set(doc)
    return csv_header_is(path, FRAME_COLUMNS if path.name.endswith(".frames.csv") else FILE_COLUMNS)


def check_outputs(out: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Before any work: every file ``--out`` would write is writable, and none that exists is
    replaced unless it is an earlier predict output (or ``overwrite``) — also the
    ``.frames.csv`` sibling the user never named."""
    from edgedistal.utils.io import check_output_file
    from edgedistal.utils.safepath import refuse_foreign

    paths = output_paths(out)
    for p in paths:
        refuse_foreign(p, _ours, overwrite, "-o/--out")
        check_output_file(p, "-o/--out")
    return paths


def write_outputs(result: PredictResult, out: str | os.PathLike[str]) -> list[Path]:
    """``.json``: files + frames + backend in one document; ``.csv``: files, frames beside it."""
    from edgedistal.utils.io import atomic_path, write_json_atomic

    out = Path(out)
    if out.suffix.lower() == ".json":
        doc = {"backend": result.backend,
               "files": _records(result.files), "frames": _records(result.frames)}
        return [write_json_atomic(out, doc)]
    _, frames = output_paths(out)
    for df, path in ((result.files, out), (result.frames, frames)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
    return [out, frames]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with NaN → None (valid JSON)."""
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]
