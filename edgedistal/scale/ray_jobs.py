"""`extract` and `score` on a Ray cluster: the single-process work, spread over Ray Data actors.

Why it is shaped this way:

* Ray Data's ``map_batches`` with a callable class runs a fixed pool of actors
  (``concurrency=n``); each builds its face detector or inference backend once, in
  ``__init__``, then takes one *shard* per call. GPU actors (``num_gpus=1``) score where the
  cluster has GPUs; face detection is CPU work, so extraction always uses CPU actors.
* Each shard's result is written atomically under ``--out`` by the actor itself (a path every
  node sees), never shipped through the object store: extraction writes the usual per-video
  done-records and crops, scoring writes ``.ray/score/<start>-<digest>.npz``. A re-run skips
  what is on disk.
* The merge runs the single-process code on those files in input order
  (:func:`edgedistal.extract.run.finish_extract`, :func:`edgedistal.acquire.scorer.score_table`), so the
  manifest, crops, scores and embeddings are identical to a single-process run.
* A worker that dies is restarted and its shard re-run (Ray Data's actor ``max_restarts`` and
  ``max_task_retries``, unbounded by default). Every shard attempt and actor start leaves an
  empty marker file: the summary counts retries from them, and a shard past ``retries``
  attempts stops the job with an error instead of looping. A video that killed its worker
  ``CRASH_LIMIT`` times is recorded as a failure, so one bad file cannot stop a long run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.extract.run import ExtractConfig, ExtractResult, finish_extract, plan_extract
from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

log = logging.getLogger(__name__)

RAY_DIR = ".ray"
#: A video whose extraction killed its worker this many times in one run is recorded as failed.
CRASH_LIMIT = 2
#: Default retries of a shard whose worker died (and restarts of that worker).
RETRIES = 3
#: BackendSpec's field defaults (shard digests see the full spec; BackendSpec.fields() leaves
#: workspace_mb and prefix out at their defaults, as specs written before them did).
BACKEND_DEFAULTS = {"name": "auto", "precision": "fp32", "checkpoint": None, "onnx_dir": None,
                    "engine_dir": None, "device": None, "batch_size": 32, "cuda_graphs": False}


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "--ray needs Ray Data, which is not installed", 'pip install "edgedistal[ray]"'
        ) from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str = "auto") -> Iterator[Any]:
    """Connect to ``address`` (``auto``: the cluster this machine is in, else a new local one).

    A Ray already initialised by the caller (a test, a notebook) is used as it is and left up.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=None if address == "auto" else address, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EdgedistalError(f"cannot connect to the Ray cluster at {address!r} ({exc})",
                              "start one with `ray start --head`, or pass --ray auto for a local one") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _mark(folder: Path, prefix: str) -> None:
    """An empty, uniquely named file: one per attempt, counted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}.{uuid.uuid4().hex[:12]}").touch()


def _count(folder: Path, prefix: str | None = None) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if prefix is None or p.name.rsplit(".", 1)[0] == prefix)


class _ShardActor:
    """One Ray Data actor: notes its start and each shard attempt, then runs :meth:`work`.

    ``die_once`` (tests, benchmarks) names a marker file: the first actor to create it kills
    its own process with SIGKILL halfway through a shard, as an OOM-kill or a lost node would.
    """

    def __init__(self, runs_dir: str, die_once: str | None = None, retries: int = RETRIES) -> None:
        import cv2

        cv2.setNumThreads(1)  # one actor per CPU: nested threads only contend
        self.runs_dir = Path(runs_dir)
        self.die_once = die_once
        self.retries = retries
        _mark(self.runs_dir / "actors", "actor")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out, info = [], []
        for sid, payload in zip(batch["shard"], batch["payload"], strict=True):
            try:
                self.marks = self.runs_dir / "attempts" / str(sid)  # markers of this shard only
                if _count(self.marks, "shard") > self.retries:
                    raise EdgedistalError(
                        f"shard {sid} killed its Ray worker {self.retries + 1} time(s) (out of memory? "
                        "a crashing input?)",
                        "see the worker logs under /tmp/ray/session_latest/logs on that node; "
                        "re-run to resume: finished shards are kept")
                _mark(self.marks, "shard")
                info.append(json.dumps(self.work(str(sid), json.loads(payload))))
            except EdgedistalError as exc:
                write_json_atomic(self.runs_dir / "errors" / f"{sid}.json", {"message": str(exc), "hint": exc.hint})
                raise
            out.append(str(sid))
        return {"shard": np.array(out), "info": np.array(info)}

    def work(self, sid: str, payload: Any) -> dict:
        raise NotImplementedError

    def _maybe_die(self) -> None:
        if not self.die_once:
            return
        try:
            fd = os.open(self.die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def _run_shards(ray: Any, rows: list[dict], actor: type, ctor: dict, *, actors: int | None,
                num_cpus: float, num_gpus: float, retries: int) -> tuple[list[dict], int]:
    """Run ``rows`` (one per shard) through a pool of ``actor``; return its outputs, pool size."""
    if not rows:
        return [], 0
    from edgedistal.utils import progress

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress.enabled()
    res = ray.cluster_resources()
    if actors is None:
        per = num_gpus if num_gpus else num_cpus
        actors = max(1, int(res.get("GPU" if num_gpus else "CPU", 1) // per))
    actors = max(1, min(actors, len(rows)))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # Ray Data restarts dead actors and re-runs their shard for ever (max_restarts=-1,
    # max_task_retries=-1); the actors bound that themselves by counting attempt markers.
    ds = ds.map_batches(actor, fn_constructor_kwargs={**ctor, "retries": retries}, batch_size=1,
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus,
                        num_gpus=num_gpus)
    try:
        return ds.take_all(), actors
    except Exception:
        # Ray ships a user error back as text; the actor also left it on disk, so it comes out
        # as the one-line error it is (not a Ray trace)
        errors = sorted((Path(ctor["runs_dir"]) / "errors").glob("*.json"))
        if errors:
            err = read_json(errors[0])
            raise EdgedistalError(err["message"], err["hint"]) from None
        raise


def _stats(runs: Path, shards: int, skipped: int, run: int, actors: int, address: str, **extra: Any) -> dict:
    attempts = sum(_count(d, "shard") for d in (runs / "attempts").glob("*"))
    started = _count(runs / "actors")
    return {"address": address, "shards": shards, "shards_skipped": skipped, "shards_run": run,
            "actors": actors, "retries": max(0, attempts - run), "actor_restarts": max(0, started - actors),
            **extra}


def _cleanup(folder: Path) -> None:
    """Remove ``folder`` and the now empty parents up to ``--out``'s ``.ray``."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.parent.name.endswith("-runs"):
        # an actor of an aborted earlier run that Ray restarted late may have recreated its own
        # run folder; the output lock keeps other jobs out of --out, so every run folder is ours
        shutil.rmtree(folder.parent, ignore_errors=True)
    for parent in folder.parents:
        if parent.name != RAY_DIR and RAY_DIR not in parent.parts:
            break
        with contextlib.suppress(OSError):
            parent.rmdir()
        if parent.name == RAY_DIR:
            break


# -- extract ----------------------------------------------------------------------------------
class _ExtractActor(_ShardActor):
    """Builds the face detector once, then extracts its shard's videos with ``process_video``."""

    def __init__(self, runs_dir: str, config: dict, die_once: str | None = None,
                 retries: int = RETRIES) -> None:
        super().__init__(runs_dir, die_once, retries)
        from edgedistal.extract.run import _detector

        _detector(ExtractConfig(**config))  # once per actor, cached for process_video

    def work(self, sid: str, payload: list[dict]) -> dict:
        from edgedistal.extract.run import process_video, write_failure

        crashed = 0
        for job in payload:
            if (Path(job["out_dir"]) / "done" / f"{job['key']}.json").exists():
                continue  # finished before this worker died: the retry skips it
            if _count(self.marks, f"v-{job['key']}") >= CRASH_LIMIT:
                write_failure(job, f"killed its extraction worker {CRASH_LIMIT} times (decoder crash or out of memory)")
                crashed += 1
                continue
            _mark(self.marks, f"v-{job['key']}")
            process_video(job)
            self._maybe_die()
        return {"crashed": crashed}


def ray_extract(
    src: str | os.PathLike[str] | Manifest,
    out_dir: str | os.PathLike[str],
    cfg: ExtractConfig = ExtractConfig(),
    *,
    layout: str = "auto",
    address: str = "auto",
    actors: int | None = None,
    shard_size: int = 16,
    retries: int = RETRIES,
    die_once: str | os.PathLike[str] | None = None,
) -> ExtractResult:
    """:func:`edgedistal.extract.run.run_extract` on Ray: same outputs, ``result.extra["ray"]`` says
    how (shards run and skipped, actors, retries). Shards are ``shard_size`` consecutive inputs."""
    if shard_size < 1:
        raise EdgedistalError(f"shard size must be >= 1 (got {shard_size})", "e.g. 16 videos per shard")
    plan = plan_extract(src, out_dir, cfg, layout=layout)
    todo = {job["key"]: job for job in plan.jobs}
    keyed = [k for k in plan.keys if k is not None]
    rows = []
    n_shards = -(-len(keyed) // shard_size)
    for i in range(n_shards):
        jobs = [todo[k] for k in keyed[i * shard_size:(i + 1) * shard_size] if k in todo]
        if jobs:  # a shard all of whose videos have done-records is finished
            rows.append({"shard": f"{i:06d}", "payload": json.dumps(jobs)})
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    runs = plan.out / RAY_DIR / "extract-runs" / run_id
    ctor = {"runs_dir": str(runs), "config": asdict(cfg), "die_once": str(die_once) if die_once else None}
    pool = 0
    try:
        if rows:
            with ray_session(address) as ray:
                outs, pool = _run_shards(ray, rows, _ExtractActor, ctor, actors=actors, num_cpus=1,
                                         num_gpus=0, retries=retries)
        else:
            outs = []
        crashed = sum(json.loads(o["info"])["crashed"] for o in outs)
        stats = _stats(runs, n_shards, n_shards - len(rows), len(rows), pool, address,
                       crashed_videos=crashed)
    finally:
        _cleanup(runs)
    result = finish_extract(plan)
    result.extra["ray"] = stats
    return result


# -- score ------------------------------------------------------------------------------------
class _ScoreActor(_ShardActor):
    """Builds the inference backend once, then scores one contiguous row range per shard."""

    def __init__(self, runs_dir: str, shard_dir: str, backend: dict, batch_size: int,
                 die_once: str | None = None, retries: int = RETRIES) -> None:
        super().__init__(runs_dir, die_once, retries)
        from edgedistal.runtime.select import BackendSpec

        self.backend = BackendSpec(**backend).open()
        self.shard_dir = Path(shard_dir)
        self.batch_size = batch_size

    def work(self, sid: str, payload: dict) -> dict:
        from edgedistal.acquire.scorer import score_loaded
        from edgedistal.data.images import decode_batch

        target = self.shard_dir / f"{sid}.npz"
        info = vars(self.backend.info)
        if target.exists():
            return info
        paths = payload["paths"]
        size = self.backend.image_size
        probs, emb = score_loaded(len(paths), lambda a, b: decode_batch(paths[a:b], size),
                                  self.backend, batch_size=self.batch_size, progress=False)
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, probs=probs, emb=emb)
        self._maybe_die()  # written but not reported: the retry must find and keep it
        return info


def _stat_text(path: str | os.PathLike[str] | None) -> str:
    """Identity of a model artifact (a file, or a folder's files) for the shard digests."""
    if path is None:
        return "-"
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    parts = []
    for f in files:
        with contextlib.suppress(OSError):
            if f.is_file():
                st = f.stat()
                parts.append(f"{f}|{st.st_size}|{st.st_mtime_ns}")
    return ";".join(parts)


def _shard_names(paths: list[str], bounds: list[tuple[int, int]], spec: str) -> list[str]:
    """``<start>-<digest>``: the digest covers the backend, the batch size and the shard's files
    (path, size, mtime), so a changed model or image is never served from an old shard."""
    names = []
    for a, b in bounds:
        h = hashlib.sha1(spec.encode())
        for p in paths[a:b]:
            try:
                st = os.stat(p)
                h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"|{p}|missing".encode())
        names.append(f"{a:09d}-{h.hexdigest()[:12]}")
    return names


def ray_score(
    manifest: Manifest,
    out_dir: str | os.PathLike[str],
    backend: dict,
    *,
    batch_size: int = 256,
    address: str = "auto",
    actors: int | None = None,
    shard_batches: int | None = None,
    gpu: bool | None = None,
    retries: int = RETRIES,
    die_once: str | os.PathLike[str] | None = None,
) -> dict:
    """:func:`edgedistal.acquire.scorer.score_manifest` on Ray: identical ``scores.parquet`` and
    ``embeddings.npy``; returns the summary (``scores.json``, with a ``ray`` entry).

    ``backend`` holds :class:`~edgedistal.runtime.select.BackendSpec` fields (``spec.fields()``); each
    actor builds it once. A shard is ``shard_batches`` whole chunks of ``batch_size`` rows (default
    about 4096 rows), so every ``backend.infer`` call sees exactly the images it sees in the
    single-process run. ``gpu=None``: GPU actors when the cluster has GPUs and the backend may use
    one.
    """
    from edgedistal.acquire.scorer import (
        EMBEDDINGS_FILE,
        SCORES_FILE,
        embedding_writer,
        score_table,
        write_summary,
    )
    from edgedistal.runtime.select import GPU_BACKENDS

    n = len(manifest)
    if n == 0:
        raise EdgedistalError("the manifest is empty: nothing to score", "check the manifest's filters")
    # the same backend spelled with or without its defaults must find the same shards
    backend = {**BACKEND_DEFAULTS, **{k: str(v) if isinstance(v, Path) else v for k, v in backend.items()}}
    out = Path(out_dir)
    k = shard_batches or max(1, 4096 // batch_size)
    step = k * batch_size
    bounds = [(a, min(n, a + step)) for a in range(0, n, step)]
    paths = [str(p) for p in manifest.paths]
    spec = json.dumps({"backend": backend, "batch_size": batch_size,
                       "artifacts": [_stat_text(backend.get(a)) for a in ("checkpoint", "onnx_dir", "engine_dir")]},
                      sort_keys=True, default=str)
    names = _shard_names(paths, bounds, spec)
    shard_dir = out / RAY_DIR / "score"
    rows = [{"shard": name, "payload": json.dumps({"paths": paths[a:b]})}
            for name, (a, b) in zip(names, bounds, strict=True) if not (shard_dir / f"{name}.npz").exists()]
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    runs = out / RAY_DIR / "score-runs" / run_id
    t0 = time.perf_counter()
    info: dict | None = None
    pool = 0
    try:
        if rows:
            with ray_session(address) as ray:
                name = backend.get("name", "auto")
                wants_gpu = (backend.get("device") or "").startswith("cuda") or name in GPU_BACKENDS or (
                    name == "auto" and backend.get("device") != "cpu")
                use_gpu = gpu if gpu is not None else wants_gpu and ray.cluster_resources().get("GPU", 0) >= 1
                ctor = {"runs_dir": str(runs), "shard_dir": str(shard_dir), "backend": backend,
                        "batch_size": batch_size, "die_once": str(die_once) if die_once else None}
                outs, pool = _run_shards(ray, rows, _ScoreActor, ctor, actors=actors, num_cpus=1,
                                         num_gpus=1 if use_gpu else 0, retries=retries)
            infos = {o["info"] for o in outs}
            if len(infos) > 1:
                log.warning("actors ran different backends: %s", sorted(infos))
            info = json.loads(sorted(infos)[0])
        stats = _stats(runs, len(bounds), len(bounds) - len(rows), len(rows), pool, address)
    finally:
        _cleanup(runs)
    dt = time.perf_counter() - t0
    probs = np.empty(n, np.float32)
    dim = 0
    with embedding_writer(out, n) as open_emb:
        emb = None
        for name, (a, b) in zip(names, bounds, strict=True):
            with np.load(shard_dir / f"{name}.npz") as z:
                if emb is None:
                    dim = int(z["emb"].shape[1])
                    emb = open_emb(dim)
                probs[a:b] = z["probs"]
                emb[a:b] = z["emb"]
        if isinstance(emb, np.memmap):
            emb.flush()
        del emb
    table = score_table(manifest, probs)
    with atomic_path(out / SCORES_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    from edgedistal.runtime.base import BackendInfo

    backend_info = BackendInfo(**info) if info else BackendInfo("cached shards", "-", backend.get("precision", "fp32"))
    run = {r["shard"] for r in rows}
    ips = sum(b - a for (a, b), nm in zip(bounds, names, strict=True) if nm in run) / max(dt, 1e-9)
    write_summary(out, n, ips, dim, backend_info, ray=stats)
    _cleanup(shard_dir)  # merged: the shards would double the disk use
    log.info("scored %d rows on Ray (%s) → %s, %s", n, stats, out / SCORES_FILE, out / EMBEDDINGS_FILE)
    return {"n": n, "images_per_s": ips, "embedding_dim": dim, "backend": vars(backend_info), "ray": stats}
