"""Batch scorer: a pool of images → fake probabilities, uncertainty and embeddings.

Decoding and inference overlap: a background thread prepares the next chunk (decodes it with
``decode_batch``, or slices the uint8 cache written by ``load_images``) while the backend runs
the current one. Outputs are row-aligned with the manifest: ``scores.parquet`` (one row per
sample) and ``embeddings.npy`` (memory-mappable), both written atomically.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgedistal.acquire.uncertainty import uncertainty_table
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.runtime.base import Backend, BackendInfo
from edgedistal.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

SCORES_FILE = "scores.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
SUMMARY_FILE = "scores.json"


@dataclass
class ScoreResult:
    table: pd.DataFrame
    embeddings: np.ndarray
    images_per_s: float
    backend: BackendInfo


def _prefetch(n: int, chunk: int, load: Callable[[int, int], np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, images)`` chunks; a background thread loads chunk i+1 during chunk i."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def work() -> None:
        try:
            for s in range(0, n, chunk):
                if stop.is_set():
                    return
                q.put((s, load(s, min(n, s + chunk))))
            q.put(None)
        except BaseException as exc:  # hand errors (e.g. unreadable file) to the consumer
            q.put(exc)

    t = threading.Thread(target=work, name="edgedistal-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # drain so a blocked producer can finish
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass


def _stream(
    n: int, load: Callable[[int, int], np.ndarray], backend: Backend, batch_size: int, progress: bool,
    sink: Callable[[int, np.ndarray, np.ndarray], None],
) -> float:
    """Run all chunks through ``backend``, hand results to ``sink``; return images/s."""
    from edgedistal.utils.progress import track

    starts: deque[int] = deque()

    def feed() -> Iterator[np.ndarray]:
        for s, imgs in _prefetch(n, batch_size, load):
            starts.append(s)
            yield imgs

    t0 = time.perf_counter()
    # backends that pipeline across calls (torch on CUDA) expose infer_chunks
    pipelined = getattr(backend, "infer_chunks", None)
    results = pipelined(feed()) if pipelined else (backend.infer(x) for x in feed())
    if progress:
        results = track(results, total=-(-n // batch_size), description=f"scoring {n} images")
    for p, e in results:
        sink(starts.popleft(), p, e)
    dt = time.perf_counter() - t0
    return n / dt if dt > 0 else float("inf")


def score_images(
    images: np.ndarray, backend: Backend, *, batch_size: int = 256, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Score an in-memory (or memory-mapped) uint8 array ``[N,H,W,3]`` → (probs [N], emb [N,D]).

    ``batch_size`` is the chunk handed to ``backend.infer`` per call; backends micro-batch
    inside (the torch CUDA backend pipelines uploads and compute within a chunk).
    """
    return score_loaded(len(images), lambda a, b: images[a:b], backend, batch_size=batch_size,
                        progress=progress)


def score_loaded(
    n: int, load: Callable[[int, int], np.ndarray], backend: Backend, *, batch_size: int = 256,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`score_images` for rows ``load(a, b)`` gives (decoded per chunk, prefetched)."""
    probs = np.empty(n, np.float32)
    embs: list[np.ndarray | None] = [None]

    def sink(s: int, p: np.ndarray, e: np.ndarray) -> None:
        if embs[0] is None:
            embs[0] = np.empty((n, e.shape[1]), np.float32)
        probs[s : s + len(p)] = p
        embs[0][s : s + len(p)] = e

    _stream(n, load, backend, batch_size, progress, sink)
    return probs, embs[0] if embs[0] is not None else np.empty((0, 0), np.float32)


def _image_source(manifest: Manifest, size: int, use_cache: bool) -> Callable[[int, int], np.ndarray]:
    """Slices of the uint8 cache when ``load_images`` already built it, else decode per chunk."""
    from edgedistal.data import images as im

    paths = manifest.paths
    target = im.cache_dir() / "images" / f"{im.cache_key(paths, size)}.npy"
    if use_cache and target.exists():
        arr = np.load(target, mmap_mode="r")
        log.info("reading the image cache %s", target)
        return lambda a, b: np.ascontiguousarray(arr[a:b])
    return lambda a, b: im.decode_batch(paths[a:b], size)


def score_manifest(
    manifest: Manifest,
    backend: Backend,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 256,
    progress: bool = True,
    use_cache: bool = True,
) -> ScoreResult:
    """Score every row of ``manifest``; write ``scores.parquet`` + ``embeddings.npy`` to ``out_dir``.

    Rows of both files follow the manifest's order. Without ``out_dir`` nothing is written.
    """
    n = len(manifest)
    if n == 0:
        raise EdgedistalError("the manifest is empty: nothing to score", "check the manifest's filters")
    load = _image_source(manifest, backend.image_size, use_cache)
    probs = np.empty(n, np.float32)
    out = Path(out_dir) if out_dir is not None else None
    state: dict = {"emb": None}

    with embedding_writer(out, n) as open_emb:

        def sink(s: int, p: np.ndarray, e: np.ndarray) -> None:
            if state["emb"] is None:
                state["emb"] = open_emb(e.shape[1])
            probs[s : s + len(p)] = p
            state["emb"][s : s + len(p)] = e

        ips = _stream(n, load, backend, batch_size, progress, sink)
        emb = state["emb"]
        if isinstance(emb, np.memmap):
            emb.flush()
    table = score_table(manifest, probs)
    if out is not None:
        with atomic_path(out / SCORES_FILE) as tmp:
            table.to_parquet(tmp, index=False)
        emb = np.load(out / EMBEDDINGS_FILE, mmap_mode="r")
        write_summary(out, n, ips, int(emb.shape[1]), backend.info)
    log.debug("scored %d images at %.1f images/s with %s", n, ips, backend.info)
    return ScoreResult(table, emb, ips, backend.info)


def score_table(manifest: Manifest, probs: np.ndarray) -> pd.DataFrame:
    """``scores.parquet``'s rows: one per manifest row, in its order (shared with the Ray merge)."""
    table = pd.DataFrame({"sample_id": manifest.df["sample_id"].to_numpy(), "prob": probs})
    for k, v in uncertainty_table(probs).items():  # the definitions acquisition uses
        table[k] = v
    table["label"] = manifest.df["label"].to_numpy()
    table["group"] = manifest.df["group"].to_numpy()
    return table


def write_summary(out: Path, n: int, ips: float, dim: int, info: BackendInfo, **extra: object) -> None:
    table = out / SCORES_FILE
    # an embedder's scores have embeddings only (NaN probabilities): say so for whoever reads them
    kind = {"model_kind": "embedder"} if table.exists() and embedder_only(pd.read_parquet(table, columns=["prob"])) else {}
    write_json_atomic(out / SUMMARY_FILE, {
        **kind, "n": n, "images_per_s": round(ips, 1), "embedding_dim": dim,
        "backend": vars(info), "files": [SCORES_FILE, EMBEDDINGS_FILE], **extra,
    })


class embedding_writer:
    """Context manager: ``open(dim)`` gives a memmap under a temp name, renamed on success."""

    def __init__(self, out: Path | None, n: int):
        self.out, self.n = out, n
        self._ctx = atomic_path(out / EMBEDDINGS_FILE) if out is not None else None

    def __enter__(self) -> Callable[[int], np.ndarray]:
        tmp = self._ctx.__enter__() if self._ctx is not None else None

        def open_emb(dim: int) -> np.ndarray:
            if tmp is None:
                return np.empty((self.n, dim), np.float32)
            return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.n, dim))

        return open_emb

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def embedder_only(table: pd.DataFrame) -> bool:
    """Scores written by an embedder: every probability is NaN (it has no detector head)."""
    probs = table["prob"].to_numpy(np.float64)
    return len(probs) > 0 and bool(np.isnan(probs).all())


def read_scores(scores_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """``scores.parquet`` + ``embeddings.npy`` of a finished :func:`score_manifest` run, checked
    row-aligned and finite so a selection never reads a half-written or mismatched pair."""
    d = Path(scores_dir)
    fix = f"score the pool first: edgedistal score --manifest MANIFEST -o {d}"
    if not (d / SCORES_FILE).exists() or not (d / EMBEDDINGS_FILE).exists():
        raise EdgedistalError(f"{d}: no {SCORES_FILE} + {EMBEDDINGS_FILE} (not an `edgedistal score` folder)", fix)
    try:
        table = pd.read_parquet(d / SCORES_FILE)
        emb = np.load(d / EMBEDDINGS_FILE, mmap_mode="r")
    except Exception as exc:  # pyarrow / numpy raise many types for a damaged file
        raise EdgedistalError(f"{d}: cannot read the scores ({exc})", fix) from exc
    if "sample_id" not in table or "prob" not in table:
        raise EdgedistalError(f"{d / SCORES_FILE}: no sample_id/prob columns", fix)
    if emb.ndim != 2 or len(emb) != len(table):
        raise EdgedistalError(f"{d}: {len(table)} score rows but embeddings of shape {emb.shape}", fix)
    if table["sample_id"].duplicated().any():
        raise EdgedistalError(f"{d / SCORES_FILE}: sample_id repeats (merged twice?)", fix)
    if not embedder_only(table) and not np.isfinite(table["prob"].to_numpy(np.float64)).all():
        raise EdgedistalError(f"{d / SCORES_FILE}: non-finite probabilities", fix)
    return table, emb
