"""Latency, throughput, memory and accuracy drift per backend × precision × batch.

Timing follows trtexec/Polygraphy: warm up, then record one sample per iteration and report
percentiles of the *recorded samples* (never of running means). End-to-end latency is always
host→host (uint8 batch in host memory → probabilities/embeddings back in host memory); a
compute-only latency is added where the backend lets us keep the input on the device (torch on
CUDA, timed with CUDA events). Accuracy (AUC, balanced accuracy, max |Δp| against the fp32 run of
the same backend family) is measured once per backend × precision on a labelled manifest, so a
fast int8 row can never hide a broken model.

The backend factory is injectable: tests drive the whole loop with scripted fake backends and a
fake clock; the CLI opens :class:`edgedistal.runtime.select.BackendSpec`.

Environment capture lives in :mod:`edgedistal.bench.env` and the ``--profile jetson`` FLOP
estimate in :mod:`edgedistal.bench.jetson`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedistal.bench.env import capture_environment, finish_environment
from edgedistal.bench.jetson import estimate_section
from edgedistal.errors import EdgedistalError
from edgedistal.runtime.base import PRECISIONS, Backend
from edgedistal.runtime.select import ORDER

_log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
#: numpy.percentile method used for every percentile (Hyndman & Fan type 7, numpy's default).
PERCENTILE_METHOD = "linear"
PERCENTILES = (50, 90, 95, 99)
#: Backends in the order ``auto`` prefers them: runtime.select owns the list.
KNOWN_BACKENDS = ORDER
#: Relative p50/p99 change between two passes still called stable.
STABILITY_TOLERANCE = 0.15

Clock = Callable[[], float]
Factory = Callable[[str, str, int], Backend]


@dataclass
class BenchConfig:
    """What to measure. ``min_time_s`` (if set) replaces the fixed ``iters`` count."""

    backends: Sequence[str] = ("auto",)
    precisions: Sequence[str] = ("fp32",)
    batches: Sequence[int] = (1, 8, 32)
    warmup: int = 10
    iters: int = 100
    min_time_s: float | None = None
    min_iters: int = 10
    max_iters: int = 100_000
    repeat: int = 1
    profile: str = "default"
    workspace_mb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- statistics ----------------------------------------------------------------------------------
def summarize(samples_ms: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Percentiles, mean, min and max of recorded per-iteration samples (milliseconds)."""
    s = np.asarray(samples_ms, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no latency samples recorded")
    pct = np.percentile(s, PERCENTILES, method=PERCENTILE_METHOD)
    out: dict[str, Any] = {f"p{p}": float(v) for p, v in zip(PERCENTILES, pct, strict=True)}
    out.update(mean=float(s.mean()), std=float(s.std()), min=float(s.min()), max=float(s.max()))
    out["n"] = int(s.size)
    out["samples_summary"] = (
        f"{s.size} samples after warm-up; percentiles by numpy.percentile(method="
        f"{PERCENTILE_METHOD!r})"
    )
    return out


def time_calls(
    fn: Callable[[], Any],
    warmup: int,
    iters: int,
    min_time_s: float | None = None,
    clock: Clock = time.perf_counter,
    min_iters: int = 10,
    max_iters: int = 100_000,
) -> np.ndarray:
    """Run ``fn`` ``warmup`` times untimed, then record each call's duration in ms.

    With ``min_time_s`` the loop runs until that much time was recorded *and* at least
    ``min_iters`` samples exist (trtexec's ``--duration`` semantics), capped at ``max_iters``.
    """

    def timed() -> float:
        t0 = clock()
        fn()
        return (clock() - t0) * 1e3

    for _ in range(warmup):
        fn()
    return _collect(timed, iters, min_time_s, min_iters, max_iters)


def time_device_calls(
    fn: Callable[[], float], warmup: int, iters: int, min_time_s: float | None = None,
    min_iters: int = 10, max_iters: int = 100_000,
) -> np.ndarray:
    """Like :func:`time_calls` for functions that measure themselves and return ms (CUDA events)."""
    for _ in range(warmup):
        fn()
    return _collect(lambda: float(fn()), iters, min_time_s, min_iters, max_iters)


def _collect(sample_ms: Callable[[], float], iters: int, min_time_s: float | None,
             min_iters: int, max_iters: int) -> np.ndarray:
    """The shared stopping rule: ``iters`` samples, or ``min_time_s`` recorded and ``min_iters``."""
    samples: list[float] = []
    total_ms = 0.0
    while True:
        samples.append(sample_ms())
        total_ms += samples[-1]
        n = len(samples)
        if n >= max_iters:
            break
        if min_time_s is None:
            if n >= iters:
                break
        elif total_ms / 1e3 >= min_time_s and n >= min_iters:
            break
    return np.asarray(samples)


# -- memory --------------------------------------------------------------------------------------
def steady_allocator() -> str:
    """Put glibc malloc in its steady state before timing CPU inference.

    glibc starts by serving large blocks (activations) with fresh mmap()s and only raises its
    mmap threshold as blocks are freed, so the first pass over a batch size page-faults on every
    call: PyTorch CPU rows measured 20–40% slower in a process's first pass than in later ones,
    even after 50 warm-up iterations. Fixing the thresholds makes every pass measure the
    allocator's long-run behaviour (what a serving process sees). Returns what was done.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "unchanged (not glibc)"
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = [mallopt(m_mmap_threshold, 32 << 20), mallopt(m_trim_threshold, 1 << 30), mallopt(m_top_pad, 256 << 20)]
    return "glibc mallopt: mmap_threshold 32 MiB, trim_threshold 1 GiB, top_pad 256 MiB" + (
        "" if all(ok) else f" (partly refused: {ok})"
    )


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ≥ 4.0: write 5 to clear_refs); True if done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (VmHWM, else getrusage)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if platform.system() == "Linux" else kb / 2**20


def _cuda_index(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    return int(device.split(":")[1]) if ":" in device else 0


def _reset_device_peak(device: str) -> None:
    idx = _cuda_index(device)
    if idx is None:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize(idx)
        torch.cuda.reset_peak_memory_stats(idx)


def _device_peak_mb(device: str) -> float | None:
    """torch's peak allocation on the device (covers torch backends; None for CPU)."""
    idx = _cuda_index(device)
    if idx is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize(idx)
    return torch.cuda.max_memory_allocated(idx) / 2**20


# -- accuracy ------------------------------------------------------------------------------------
def predict_all(backend: Backend, images: np.ndarray, batch: int) -> np.ndarray:
    """Probabilities for every image, in order, batch by batch."""
    out = [backend.infer(np.ascontiguousarray(images[s : s + batch]))[0] for s in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def accuracy_metrics(
    labels: np.ndarray, probs: np.ndarray, reference: np.ndarray | None = None
) -> dict[str, float | None]:
    """AUC and balanced accuracy at 0.5 (sklearn), and max |Δp| against ``reference`` probs."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    both = len(np.unique(labels)) == 2
    auc = float(roc_auc_score(labels, probs)) if both else None
    bacc = float(balanced_accuracy_score(labels, (probs >= 0.5).astype(int))) if len(labels) else None
    dp = float(np.max(np.abs(probs - reference))) if reference is not None and len(probs) else None
    return {"auc": auc, "balanced_acc": bacc, "max_abs_dp_vs_fp32": dp, "n": int(len(labels))}


# -- compute-only timing ---------------------------------------------------------------------------
def device_compute_fn(backend: Backend, images: np.ndarray) -> Callable[[], float] | None:
    """A self-timing call of the backend's model on a device-resident batch, or None.

    Works for backends that expose ``model`` (a torch module taking uint8 NHWC, i.e. a
    DeployModel) on a CUDA device; the input is uploaded once and each call is timed with CUDA
    events, so the number excludes host↔device copies and host-side preprocessing.
    """
    device = backend.info.device
    model = getattr(backend, "model", None)
    if _cuda_index(device) is None or model is None:
        return None
    import torch

    if not isinstance(model, torch.nn.Module) or not torch.cuda.is_available():
        return None
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    autocast = getattr(backend, "autocast_dtype", None)

    def run() -> float:
        with torch.inference_mode():
            ctx = torch.autocast("cuda", dtype=autocast) if autocast is not None else contextlib.nullcontext()
            start.record()
            with ctx:
                model(x)
            end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return run


# -- the loop ------------------------------------------------------------------------------------
def static_skip_reason(backend: str, precision: str) -> str | None:
    """Combinations not worth running whatever the machine; the reason goes into the report."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})"
    if backend.startswith("torch") and precision == "int8":
        return "torch backends have no int8 path; int8 runs from the QDQ ONNX model (onnxruntime/tensorrt)"
    if backend == "torch" and precision == "fp16":
        return "fp16 on CPU: no fast fp16 kernels (emulated via casts); not a deployment target"
    return None


def graph_kernels(backend: Backend) -> dict[str, Any] | None:
    """Integer vs float node counts of the graph ORT's CPU EP runs (None for other backends)."""
    path = getattr(backend, "onnx_path", None)
    if path is None or backend.info.name != "onnxruntime" or backend.info.device != "cpu":
        return None
    from edgedistal.runtime.ort_graph import optimised_graph_counts

    try:
        return optimised_graph_counts(path)
    except Exception as exc:  # noqa: BLE001 - a counting failure must not lose the timing row
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def resolve_backends(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """``auto`` → the available ones; ``all`` → every known backend (missing ones get skip rows)."""
    req = [r.strip() for r in requested if r.strip()]
    if not req or req == ["auto"]:
        return [b for b in KNOWN_BACKENDS if b in available]
    if req == ["all"]:
        return list(KNOWN_BACKENDS)
    unknown = [r for r in req if r not in KNOWN_BACKENDS]
    if unknown:
        raise EdgedistalError(
            f"unknown backend(s) {', '.join(unknown)}",
            f"use auto, all or a comma list of {', '.join(KNOWN_BACKENDS)}",
        )
    return req


def _batch_of(images: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` images (tiled if the set is smaller), contiguous in host memory."""
    idx = np.arange(n) % len(images)
    return np.ascontiguousarray(images[idx])


def _skip_row(backend: str, precision: str, batch: int, reason: str, device: str = "") -> dict[str, Any]:
    return {
        "backend": backend, "device": device, "precision": precision, "batch": int(batch),
        "detail": "", "latency_ms": None, "compute_ms": None, "throughput_ips": None,
        "peak_host_mb": None, "peak_device_mb": None, "accuracy": None, "skipped_reason": reason,
    }


def _time_one(backend: Backend, images: np.ndarray, batch: int, config: BenchConfig, clock: Clock) -> dict[str, Any]:
    """One timed row: host→host samples, compute-only samples where possible, memory peaks."""
    x = _batch_of(images, batch)
    device = backend.info.device
    rss_reset = reset_peak_rss()
    _reset_device_peak(device)
    samples = time_calls(
        lambda: backend.infer(x), config.warmup, config.iters, config.min_time_s, clock,
        config.min_iters, config.max_iters,
    )
    lat = summarize(samples)
    compute = None
    fn = device_compute_fn(backend, x)
    if fn is not None:
        compute = summarize(time_device_calls(fn, config.warmup, config.iters, config.min_time_s, config.min_iters, config.max_iters))
        compute["samples_summary"] = compute["samples_summary"].replace("samples", "CUDA-event samples (device-resident input)")
    return {
        "latency_ms": lat,
        "compute_ms": compute,
        "throughput_ips": batch / (lat["mean"] / 1e3),
        "peak_host_mb": peak_rss_mb(),
        "peak_host_scope": "row" if rss_reset else "process",
        "peak_device_mb": _device_peak_mb(device),
        "samples_ms": [round(float(s), 4) for s in samples],
    }


def run_bench(
    images_for: Callable[[int], np.ndarray],
    labels: np.ndarray,
    config: BenchConfig,
    factory: Factory,
    available: Sequence[str],
    clock: Clock = time.perf_counter,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Measure every backend × precision × batch; returns the report dict (rows + stability).

    ``images_for(size)`` gives the labelled images at a backend's input size; ``factory(name,
    precision, batch_size)`` builds a backend or raises (the message becomes the skip reason).
    """
    backends = resolve_backends(config.backends, available)
    precisions = sorted(dict.fromkeys(config.precisions), key=lambda p: (p != "fp32", p))
    batches = sorted({int(b) for b in config.batches})
    if not batches or batches[0] < 1:
        raise EdgedistalError(f"bad batch sizes {config.batches}", "pass positive sizes, e.g. --batch 1,8,32")
    max_batch = batches[-1]
    passes: list[dict[tuple[str, str, int], dict[str, Any]]] = []
    accuracy: dict[tuple[str, str], dict[str, Any]] = {}
    meta: dict[tuple[str, str], dict[str, str]] = {}
    skipped: dict[tuple[str, str], str] = {}
    fp32_probs: dict[str, np.ndarray | None] = {}

    def reference(name: str) -> np.ndarray | None:
        """fp32 probabilities of this backend family (computed on demand if fp32 not benchmarked)."""
        if name not in fp32_probs:
            fp32_probs[name] = None
            with contextlib.suppress(Exception):
                with contextlib.closing(factory(name, "fp32", max_batch)) as be:
                    fp32_probs[name] = predict_all(be, images_for(be.image_size), max_batch)
        return fp32_probs[name]

    loads: list[dict[str, Any]] = []
    for p in range(max(1, config.repeat)):
        timings: dict[tuple[str, str, int], dict[str, Any]] = {}
        load0, t0 = _load1(), time.time()
        for name in backends:
            for prec in precisions:
                key = (name, prec)
                if key in skipped:
                    continue
                reason = static_skip_reason(name, prec)
                if reason is None and name not in available:
                    reason = f"backend {name!r} not available on this machine (available: {', '.join(available) or 'none'})"
                if reason is not None:
                    skipped[key] = reason
                    continue
                try:
                    be = factory(name, prec, max_batch)
                except Exception as exc:  # noqa: BLE001 - any failure to build is a recorded skip
                    skipped[key] = f"could not create backend: {exc.__class__.__name__}: {exc}"
                    log(f"skip {name} {prec}: {skipped[key]}")
                    continue
                with contextlib.closing(be):
                    meta[key] = {"device": be.info.device, "detail": be.info.detail, "precision": be.info.precision}
                    if p == 0:
                        meta[key]["kernels"] = graph_kernels(be)
                    imgs = images_for(be.image_size)
                    if p == 0:
                        probs = predict_all(be, imgs, max_batch)
                        if prec == "fp32":
                            fp32_probs[name] = probs
                        ref = fp32_probs.get(name) if prec == "fp32" else reference(name)
                        accuracy[key] = accuracy_metrics(labels, probs, ref)
                    for b in batches:
                        log(f"pass {p + 1}: {name} {prec} batch {b}")
                        try:
                            timings[(name, prec, b)] = _time_one(be, imgs, b, config, clock)
                        except Exception as exc:  # noqa: BLE001 - e.g. a static-shape engine
                            timings[(name, prec, b)] = {"error": f"{exc.__class__.__name__}: {exc}"}
        passes.append(timings)
        loads.append({"pass": p + 1, "loadavg1_start": load0, "loadavg1_end": _load1(),
                      "wall_s": round(time.time() - t0, 1)})

    rows: list[dict[str, Any]] = []
    for name in backends:
        for prec in precisions:
            key = (name, prec)
            for b in batches:
                if key in skipped:
                    rows.append(_skip_row(name, prec, b, skipped[key]))
                    continue
                t = passes[0].get((name, prec, b), {"error": "not measured"})
                if "error" in t:
                    rows.append(_skip_row(name, prec, b, f"inference failed: {t['error']}", meta[key]["device"]))
                    continue
                row = _skip_row(name, prec, b, "", meta[key]["device"])
                row.update(t, detail=meta[key]["detail"], accuracy=accuracy.get(key), skipped_reason=None,
                           kernels=meta[key].get("kernels"))
                rows.append(row)
    st = stability(passes) if len(passes) > 1 else None
    if st is not None:
        st["passes"] = loads  # a failed comparison next to a load spike points at contention
    return {"rows": rows, "stability": st}


def _load1() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def stability(passes: list[dict[tuple[str, str, int], dict[str, Any]]], tol: float = STABILITY_TOLERANCE) -> dict[str, Any]:
    """Compare p50/p99 of every row between the first and each later pass (relative change)."""
    comparisons = []
    first = passes[0]
    for k, t0 in first.items():
        if "error" in t0:
            continue
        for i, other in enumerate(passes[1:], start=2):
            t1 = other.get(k)
            if not t1 or "error" in t1:
                continue
            c: dict[str, Any] = {"backend": k[0], "precision": k[1], "batch": k[2], "pass": i}
            for q in ("p50", "p99"):
                a, b = t0["latency_ms"][q], t1["latency_ms"][q]
                c[f"{q}_pass1"], c[f"{q}_pass{i}"] = a, b
                c[f"{q}_rel_change"] = abs(b - a) / a if a > 0 else None
            c["stable"] = all(c[f"{q}_rel_change"] is not None and c[f"{q}_rel_change"] <= tol for q in ("p50", "p99"))
            comparisons.append(c)
    return {
        "tolerance": tol,
        "method": "each pass times every row again (backends rebuilt); |p_later - p_pass1| / p_pass1 for p50 and p99",
        "all_stable": bool(comparisons) and all(c["stable"] for c in comparisons),
        "rows": comparisons,
    }


def config_dict(config: BenchConfig) -> dict[str, Any]:
    """``config`` as a JSON-ready dict (sequences turned into lists)."""
    d = asdict(config)
    for k in ("backends", "precisions", "batches"):
        d[k] = list(d[k])
    return d


# -- from files ----------------------------------------------------------------------------------
def select_rows(manifest: Any, split: str | None, limit: int | None, seed: int = 0) -> Any:
    """The labelled rows to score: ``split`` (all rows only when the manifest has no splits at
    all), at most ``limit``. An unknown or empty split is refused: timing the train rows as
    "test" would report accuracy on data the model learned."""
    from edgedistal.data.manifest import SPLITS

    m = manifest
    if limit is not None and limit < 0:
        raise EdgedistalError(f"--limit must be >= 0 (got {limit})", "pass a count of images, or 0 for all")
    if split:
        if split not in SPLITS:
            raise EdgedistalError(f"unknown split {split!r}", "pass --split test, val or train")
        part = m.split(split)
        present = sorted(set(m.df["split"]) - {""})
        if not len(part) and present:
            raise EdgedistalError(f"the manifest has no {split!r} rows (it has {', '.join(present)})",
                                  f"pass --split {present[0]}, or re-split the manifest")
        m = part if len(part) else m
    if limit and len(m) > limit:
        rng = np.random.default_rng(seed)
        m = m.take(np.sort(rng.choice(len(m), size=limit, replace=False)))
    return m


def runtime_factory(
    checkpoint: str | None, onnx_dir: str | None, engine_dir: str | None, device: str | None,
    workspace_mb: int | None, cuda_graphs: bool = False,
) -> tuple[Factory, list[str], dict[str, Any]]:
    """A factory over :class:`edgedistal.runtime.select.BackendSpec` and what it supports.

    ``workspace_mb`` goes into the spec, which applies it where an engine is built at load
    time (ONNX Runtime's TensorRT EP); the notes say so, and that prebuilt engines keep theirs.
    """
    from edgedistal.runtime import select

    notes: dict[str, Any] = {"workspace_mb": workspace_mb, "workspace_applied": False}
    if workspace_mb:
        notes["workspace_applied"] = "onnxruntime-gpu TensorRT EP (trt_max_workspace_size)"
        notes["workspace_tensorrt"] = "tensorrt engines keep the cap they were built with (engines --workspace-mb)"

    def factory(name: str, precision: str, batch_size: int) -> Backend:
        return select.BackendSpec(name, precision, checkpoint=checkpoint, onnx_dir=onnx_dir, engine_dir=engine_dir,
                                  device=device, batch_size=batch_size, cuda_graphs=cuda_graphs,
                                  workspace_mb=workspace_mb).open()

    return factory, list(select.available_backends()), notes


def bench_files(
    manifest_path: str | os.PathLike[str],
    config: BenchConfig,
    checkpoint: str | None = None,
    onnx_dir: str | None = None,
    engine_dir: str | None = None,
    device: str | None = None,
    split: str | None = "test",
    limit: int | None = 512,
    cuda_graphs: bool = False,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark the backends that can run ``checkpoint`` / ``onnx_dir`` on a labelled manifest.

    Progress lines go to ``log`` (default: this module's logger at info level).

    ``threads`` caps CPU parallelism for every backend (process affinity, which ONNX Runtime's
    pool follows, plus torch's intra-op threads): on a shared machine one thread per backend
    avoids the spin-wait stalls that make multi-threaded percentiles meaningless.
    """
    from edgedistal.data.images import load_images
    from edgedistal.data.manifest import Manifest

    log = log or _log.info
    if not checkpoint and not onnx_dir and not engine_dir:
        raise EdgedistalError("nothing to benchmark", "pass --checkpoint C and/or --onnx-dir export/")
    for p, what in ((checkpoint, "checkpoint"), (onnx_dir, "ONNX folder"), (engine_dir, "engine folder")):
        if p and not Path(p).exists():
            raise EdgedistalError(f"{p}: {what} not found", "check the path (export with `edgedistal export`)")
    from edgedistal.runtime.artifacts import check_artifacts

    artifacts = check_artifacts(config.precisions, onnx_dir, engine_dir, checkpoint)  # refuse mismatches
    if threads:
        limit_threads(threads)
    env = capture_environment()
    env["threads_cap"] = threads
    env["allocator"] = steady_allocator()
    rows = select_rows(Manifest.load(manifest_path), split, limit)
    if len(rows) == 0:
        raise EdgedistalError(f"{manifest_path}: manifest has no rows", "ingest a labelled dataset first")
    paths, labels = rows.paths, rows.labels
    cache: dict[int, np.ndarray] = {}

    def images_for(size: int) -> np.ndarray:
        if size not in cache:
            cache[size] = np.array(load_images(paths, size))  # in RAM, writable: no mmap faults in timing
        return cache[size]

    factory, available, notes = runtime_factory(
        checkpoint, onnx_dir, engine_dir, device, config.workspace_mb, cuda_graphs
    )
    log(f"available backends: {', '.join(available)}")
    result = run_bench(images_for, labels, config, factory, available, log=log)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "edgedistal bench",
        "environment": finish_environment(env),
        "config": config_dict(config),
        "inputs": {
            "manifest": str(manifest_path), "split": split, "n_images": len(rows),
            "n_fake": int(np.sum(labels == 1)), "n_real": int(np.sum(labels == 0)),
            "checkpoint": checkpoint, "onnx_dir": onnx_dir, "engine_dir": engine_dir,
        },
        "method": method_notes(config),
        "backend_notes": notes,
        "artifacts": {p: a.summary() for p, a in artifacts.items()},
        "available_backends": available,
        **result,
        "jetson_estimate": None,
    }
    if config.profile == "jetson":
        report["jetson_estimate"] = estimate_section(checkpoint, onnx_dir)
    return report


def limit_threads(n: int) -> list[int]:
    """Pin this process to ``n`` of its allowed CPUs and cap its thread pools at ``n``
    (:func:`edgedistal.utils.machine.set_thread_cap`): timings need the cores to be fixed."""
    from edgedistal.utils.machine import set_thread_cap

    cpus = sorted(os.sched_getaffinity(0))[:n] if hasattr(os, "sched_getaffinity") else []
    if cpus:
        os.sched_setaffinity(0, cpus)
    set_thread_cap(n)
    return cpus


def method_notes(config: BenchConfig) -> list[str]:
    """Human-readable lines describing how the numbers in the report were measured."""
    loop = (
        f"{config.warmup} warm-up calls, then {config.iters} timed calls"
        if config.min_time_s is None
        else f"{config.warmup} warm-up calls, then timed calls until {config.min_time_s:g} s were "
        f"recorded (at least {config.min_iters})"
    )
    return [
        f"Latency: {loop} per backend x precision x batch, one sample per call (time.perf_counter).",
        "End-to-end latency is host->host: uint8 NHWC batch in host memory -> probabilities + "
        "embeddings back in host memory (includes any H2D/D2H copies and in-graph normalisation).",
        "compute_ms: device-resident input, timed with CUDA events (torch on CUDA only); null elsewhere.",
        f"Percentiles: numpy.percentile(samples, q, method={PERCENTILE_METHOD!r}) over the recorded "
        "samples; throughput = batch / mean latency.",
        "Peak host memory: VmHWM from /proc/self/status, reset before each row via "
        "/proc/self/clear_refs (peak_host_scope=row) or process-wide when reset is not permitted.",
        "Peak device memory: torch.cuda.max_memory_allocated (torch allocations only; ORT/TensorRT "
        "arenas are not seen by it).",
        "Accuracy: once per backend x precision over the labelled images (AUC and balanced accuracy "
        "at p>=0.5, sklearn); max |dp| vs the fp32 run of the same backend.",
        "Kernels (onnxruntime CPU rows): node counts of the graph ORT actually runs, saved with "
        "SessionOptions.optimized_model_filepath at ORT_ENABLE_ALL; integer = QLinearConv, "
        "ConvInteger, MatMulInteger, QLinearMatMul, QGemm, QLinearAdd, ...; float compute = Conv, "
        "Gemm, MatMul, pooling left in float.",
    ]
