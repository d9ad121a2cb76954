"""TensorRT 10 engine builds from ``export/`` (or ONNX Runtime artifacts where TensorRT is absent).

An engine is only valid for the GPU (compute capability) and TensorRT version that built it,
so each ``model_<precision>.engine`` gets a JSON sidecar; loading compares it with the running
system and asks for a rebuild on mismatch instead of failing deep inside TensorRT.

``import tensorrt`` is always lazy: the package imports and tests run without it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from edgedistal.deploy.export import model_filename
from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.runtime.artifacts import artifact_sidecar, engine_filename
from edgedistal.runtime.base import PRECISIONS
from edgedistal.runtime.trt_env import (  # noqa: F401  (what loading an engine checks; builders re-use it)
    check_engine_compatible,
    compat_problems,
    gpu_identity,
    import_tensorrt,
)
from edgedistal.utils.io import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"
SUMMARY = "engines.json"


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    return artifact_sidecar(engine_path)


# -- TensorRT build ---------------------------------------------------------------------------
def build_engine(
    onnx_path: str | os.PathLike[str],
    engine_path: str | os.PathLike[str],
    precision: str,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 64,
    workspace_mb: int = 1024,
    timing_cache: str | os.PathLike[str] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one serialized TensorRT engine from ONNX; return (and write) its sidecar.

    ``extra_meta`` (the model identity, int8 target, calibration) is merged into the sidecar:
    an engine has no metadata of its own, so the sidecar is what consistency checks read.
    """
    trt = import_tensorrt()
    if not (1 <= min_batch <= opt_batch <= max_batch):
        raise EdgedistalError(f"bad batch profile {min_batch}/{opt_batch}/{max_batch}",
                              "need 1 <= --min-batch <= --opt-batch <= --max-batch")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgedistalError(f"{onnx_path}: TensorRT cannot parse the model ({errors})",
                              "re-export with `edgedistal export` (opset >= 17)")
    inp = network.get_input(0)
    _, h, w, c = inp.shape
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (min_batch, h, w, c), (opt_batch, h, w, c), (max_batch, h, w, c))
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8: layers without Q/DQ fall back to fp16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantisation from the QDQ graph
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgedistalError(f"{onnx_path}: TensorRT engine build failed ({precision})",
                              "see the TensorRT log above; try a larger --workspace-mb")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(plan))
    if timing_cache:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    meta = {
        "format": "edgedistal-engine/1",
        "tensorrt": trt.__version__,
        **gpu_identity(),
        "precision": precision,
        "input": {"name": inp.name, "shape": ["batch", h, w, c], "dtype": "uint8"},
        "profile": {"min": min_batch, "opt": opt_batch, "max": max_batch},
        "workspace_mb": workspace_mb,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "build_seconds": round(time.perf_counter() - t0, 2),
        **(extra_meta or {}),
    }
    write_json_atomic(sidecar_path(engine_path), meta)
    return meta


# -- orchestration ----------------------------------------------------------------------------
def ensure_export(export_dir: str | os.PathLike[str], demo_if_missing: bool = False,
                  demo_checkpoint: str | os.PathLike[str] = "demo_out/detector.pt") -> None:
    """Make sure ``export_dir`` holds an fp32 model (detector or embedder); with ``demo_if_missing``,
    export the demo's (all three precisions, int8 calibrated on the demo's distilled subset when it exists)."""
    if exported_prefixes(export_dir):
        return
    demo = Path(demo_checkpoint)
    if demo_if_missing and demo.exists():
        from edgedistal.deploy.export import export_all

        log.warning("%s has no model: exporting the demo checkpoint %s", export_dir, demo)
        export_all(demo, export_dir, precisions=PRECISIONS)
        return
    raise EdgedistalError(
        f"{export_dir}: no exported model ({model_filename('fp32')})",
        "run `make demo` first (it writes demo_out/detector.pt), then `edgedistal export "
        "--checkpoint demo_out/detector.pt --out export/` (or pass --demo-if-missing)",
    )


def exported_prefixes(export_dir: str | os.PathLike[str]) -> list[str]:
    """The models ``export_dir`` holds an fp32 ONNX of: ``model`` (detector), ``embedder``."""
    from edgedistal.runtime.artifacts import PREFIXES

    return [p for p in PREFIXES if (Path(export_dir) / model_filename("fp32", p)).exists()]


def validate_onnx(path: str | os.PathLike[str]) -> None:
    """Refuse a zero-byte, truncated or invalid ONNX file before it is copied or built."""
    import onnx

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise EdgedistalError(f"{path}: missing or empty ONNX file", "re-export with `edgedistal export`")
    try:
        onnx.checker.check_model(str(path))
        from edgedistal.deploy.onnx_io import ort_session

        ort_session(path, threads=1)
    except Exception as exc:  # checker, protobuf and ORT each raise their own types
        raise EdgedistalError(f"{path}: invalid ONNX model ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})",
                              "the file is truncated or damaged: re-export with `edgedistal export`") from exc


def _tensorrt_installed() -> bool:
    try:
        import_tensorrt()
    except MissingDependencyError:
        return False
    return True


def resolve_int8_target(target: str, have_trt: bool) -> str:
    """``auto`` → tensorrt where TensorRT builds the engines, cpu for the ONNX Runtime fallback."""
    if target == "auto":
        return "tensorrt" if have_trt else "cpu"
    from edgedistal.deploy.int8 import target_options

    target_options(target)
    return target


def build_all(
    export_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    precisions: tuple[str, ...] = PRECISIONS,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 64,
    workspace_mb: int = 1024,
    int8_target: str = "auto",
    calib_manifest: str | os.PathLike[str] | None = None,
    calib_distilled: str | os.PathLike[str] | None = None,
    calib_size: int = 256,
    device: str = "auto",
    prefix: str = "model",
) -> dict[str, Any]:
    """TensorRT engines for each precision, or (no TensorRT, or ``device="cpu"``) the ONNX
    Runtime models instead. ``device="cuda:N"`` builds on GPU N: an engine is tied to its GPU.

    Each source ONNX is validated (non-empty, ``onnx.checker``, loads in ORT, identity matches
    ``export.json``) before it is copied or built. Every artifact gets ``model_<p>.json`` with
    the model identity, so ``score``/``bench``/``predict`` can check it. Returns the summary
    written to ``out_dir/engines.json``: ``{"tensorrt", "built", "failed", "note"}``.
    ``prefix="embedder"`` does the same for the embedder (``embedder_<p>.*``, ``embedder_engines.json``).
    """
    from edgedistal.runtime.artifacts import resolve, verify

    export_dir, out = Path(export_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    have_trt = device != "cpu" and _tensorrt_installed()
    if have_trt and device.startswith("cuda:"):
        from edgedistal.runtime.trt_backend import _check, _cudart

        _check(_cudart().cudaSetDevice(int(device.split(":")[1])))  # TensorRT builds on the current GPU
    target = resolve_int8_target(int8_target, have_trt)
    fp32 = resolve("fp32", export_dir, prefix=prefix)
    if fp32 is not None and fp32.onnx is not None:  # everything derives from it: check it first
        validate_onnx(fp32.onnx)
        verify(fp32)
    built: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for prec in precisions:
        try:
            src, meta = _source_for(export_dir, out, prec, target, calib_manifest, calib_distilled, calib_size,
                                    prefix)
            validate_onnx(src)
            art = resolve(prec, export_dir, prefix=prefix)
            if art is not None and art.onnx == src:
                verify(art)
            if have_trt:
                meta = build_engine(src, out / engine_filename(prec, prefix), prec, min_batch, opt_batch,
                                    max_batch, workspace_mb, timing_cache=out / TIMING_CACHE, extra_meta=meta)
                built[prec] = {"file": engine_filename(prec, prefix), **meta}
            else:
                dst = out / model_filename(prec, prefix)
                if src != dst:
                    with atomic_path(dst) as tmp:
                        shutil.copyfile(src, tmp)
                meta = {"format": "edgedistal-engine/1", "runtime": "onnxruntime", "file": dst.name,
                        **meta, "onnx": dst.name, "onnx_sha256": sha256_file(dst)}
                write_json_atomic(sidecar_path(dst), meta)
                built[prec] = meta
        except EdgedistalError as exc:
            failed[prec] = f"{exc}" + (f" (fix: {exc.hint})" if exc.hint else "")
    note = ("TensorRT engines built" if have_trt else
            "--device cpu: wrote ONNX Runtime models (fp16 / int8 QDQ)" if device == "cpu" else
            "TensorRT is not installed: wrote ONNX Runtime models (fp16 / int8 QDQ) instead; "
            "build engines on the target GPU with TensorRT 10")
    summary = {"tensorrt": have_trt, "int8_target": target, "built": built, "failed": failed, "note": note}
    write_json_atomic(out / (SUMMARY if prefix == "model" else f"{prefix}_{SUMMARY}"), summary)
    return summary


def _source_for(export_dir: Path, out: Path, precision: str, target: str, calib_manifest: Any,
                calib_distilled: Any, calib_size: int, prefix: str = "model") -> tuple[Path, dict[str, Any]]:
    """The ONNX model to copy/build for ``precision`` and the sidecar fields it brings.

    fp16 is derived from fp32 if missing. int8 is reused from the export when it was quantised
    for ``target`` and no better calibration set is available; otherwise it is quantised again
    from fp32 (into ``out``), calibrated on the distilled subset when one is given or found.
    """
    from edgedistal.deploy.export import read_sidecar
    from edgedistal.runtime.artifacts import identity_from_export_sidecar

    fp32 = export_dir / model_filename("fp32", prefix)
    if not fp32.exists():
        raise EdgedistalError(f"{fp32}: no exported model", "run `edgedistal export` first")
    side = read_sidecar(export_dir, prefix)
    identity = identity_from_export_sidecar(side)
    meta: dict[str, Any] = {"precision": precision, "identity": identity}
    path = export_dir / model_filename(precision, prefix)
    if precision == "fp32":
        return fp32, meta
    if precision == "fp16":
        if not path.exists():
            from edgedistal.deploy.export import convert_fp16
            from edgedistal.runtime.artifacts import stamp_onnx

            path = convert_fp16(fp32, out / model_filename("fp16", prefix))
            stamp_onnx(path, identity, precision="fp16")
        return path, meta
    if precision != "int8":
        raise EdgedistalError(f"unknown precision {precision!r}", "choose from fp32, fp16, int8")
    model = (side.get("models") or {}).get("int8") or {}
    have = model.get("int8_target") or ("tensorrt" if path.exists() else None)
    calib = model.get("calibration") or side.get("calibration") or {}
    explicit = calib_manifest is not None or calib_distilled is not None
    from edgedistal.data.distilled import find_distilled

    better = calib.get("kind", "generated") == "generated" and find_distilled(export_dir) is not None
    if path.exists() and have == target and not explicit and not better:
        return path, {**meta, "int8_target": target, "calibration": calib,
                      "quantisation": model.get("quantisation")}
    return _requantise(fp32, out, target, side, identity, calib_manifest, calib_distilled, calib_size, meta,
                       prefix)


def _requantise(fp32: Path, out: Path, target: str, side: dict[str, Any], identity: dict[str, Any],
                calib_manifest: Any, calib_distilled: Any, calib_size: int,
                meta: dict[str, Any], prefix: str = "model") -> tuple[Path, dict[str, Any]]:
    """Quantise ``fp32`` for ``target`` into ``out``; calibration as :func:`plan_calibration`."""
    from edgedistal.deploy.export import calibration_images
    from edgedistal.deploy.int8 import (
        GENERATED_WARNING,
        CalibrationPlan,
        plan_calibration,
        quantize_for_target,
    )
    from edgedistal.runtime.artifacts import stamp_onnx

    recorded = side.get("calibration") or {}
    if (calib_manifest is None and calib_distilled is None and recorded.get("manifest")
            and Path(recorded["manifest"]).is_file()):  # what the export was calibrated on, if it still exists
        plan = CalibrationPlan(Path(recorded["manifest"]), recorded.get("kind") or "manifest", recorded.get("split"))
    else:
        plan = plan_calibration(calib_manifest, calib_distilled, anchors=(fp32.parent,))
    if plan.kind == "generated":
        log.warning(GENERATED_WARNING)
    size = side.get("config", {}).get("image_size")
    if size is None:
        raise EdgedistalError(f"{fp32.parent}/export.json: no config.image_size", "re-export with `edgedistal export`")
    n = calib_size + (calib_size // 4 if target == "cpu" else 0)
    images, source = calibration_images(plan.manifest, size, n, split=plan.split)
    calibration = {"source": source, "kind": plan.kind, "n_images": len(images),
                   "manifest": str(plan.manifest) if plan.manifest else None, "split": plan.split}
    dst = out / model_filename("int8", prefix)
    info = quantize_for_target(fp32, dst, images, target)
    stamp_onnx(dst, identity, precision="int8", int8_target=target, calibration=source)
    log.info("int8 (%s) re-quantised from %s, calibrated on %s", target, fp32, plan.describe())
    return dst, {**meta, "int8_target": target, "calibration": calibration, "quantisation": info}
