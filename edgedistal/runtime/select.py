"""Pick an inference backend: what is installed, what artifacts exist, best first.

Order for ``"auto"``: tensorrt → onnxruntime-gpu → torch-cuda → onnxruntime (CPU) → torch (CPU).
A candidate is used only if its runtime is installed *and* its artifact exists (engine for
TensorRT, ONNX model for ONNX Runtime, checkpoint for torch) and it supports the precision.
Artifacts are found by :func:`edgedistal.runtime.artifacts.resolve`: ONNX Runtime takes ``--onnx-dir``'s
model, else the fallback model ``engines`` wrote into ``--engine-dir``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgedistal.errors import EdgedistalError
from edgedistal.runtime.base import TORCH_PRECISIONS, BaseBackend

log = logging.getLogger(__name__)

ORDER = ("tensorrt", "onnxruntime-gpu", "torch-cuda", "onnxruntime", "torch")
GPU_BACKENDS = ("tensorrt", "onnxruntime-gpu", "torch-cuda")
ALIASES = {"ort": "onnxruntime", "trt": "tensorrt", "onnxruntime-cpu": "onnxruntime", "torch-cpu": "torch"}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def available_backends() -> list[str]:
    """Backends whose runtime is installed and usable here, best first."""
    out = []
    has_cuda = _cuda()
    if has_cuda and importlib.util.find_spec("tensorrt") and importlib.util.find_spec("cuda"):
        out.append("tensorrt")
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    if has_ort:
        from edgedistal.runtime.ort_backend import gpu_providers

        if gpu_providers():
            out.append("onnxruntime-gpu")
    if has_cuda:
        out.append("torch-cuda")
    if has_ort:
        out.append("onnxruntime")
    out.append("torch")
    return out


def _artifact(candidate: str, precision: str, checkpoint: Path | None, onnx_dir: Path | None,
              engine_dir: Path | None, prefix: str = "model") -> str | None:
    """Why ``candidate`` cannot serve ``precision`` with the given artifacts (None: it can)."""
    from edgedistal.runtime.artifacts import engine_filename, onnx_filename, resolve

    if candidate == "tensorrt":
        art = resolve(precision, None, engine_dir, prefix)
        if art is None or art.engine is None:
            return f"no {engine_filename(precision, prefix)} (pass --engine-dir with built engines)"
    elif candidate.startswith("onnxruntime"):
        art = resolve(precision, onnx_dir, engine_dir, prefix)
        if art is None or art.onnx is None:
            where = " or ".join(str(d) for d in (onnx_dir, engine_dir) if d) or "no --onnx-dir/--engine-dir"
            return f"no {onnx_filename(precision, prefix)} in {where} (export it, or build it with `edgedistal engines`)"
    else:
        if checkpoint is None:
            return "no checkpoint"
        if precision == "int8":
            return "torch has no int8 path (use onnxruntime or tensorrt)"
    return None


@dataclass(frozen=True)
class BackendSpec:
    """Which backend serves which model, said once: ``score``, ``predict`` and ``bench`` build one
    from their options and :meth:`open` it; Ray actors get its :meth:`fields` and open it there.

    ``workspace_mb`` caps the TensorRT workspace where an engine is built at load time (ONNX
    Runtime's TensorRT EP); a ``tensorrt`` engine keeps the cap it was built with
    (``engines --workspace-mb``), and torch or the CPU/CUDA EPs have no such pool.
    ``prefix``: which model of the folders to serve, ``model`` (the detector) or ``embedder``.
    """

    name: str = "auto"
    precision: str = "fp32"
    checkpoint: str | None = None
    onnx_dir: str | None = None
    engine_dir: str | None = None
    device: str | None = None
    batch_size: int = 32
    cuda_graphs: bool = False
    workspace_mb: int | None = None
    prefix: str = "model"

    def __post_init__(self) -> None:
        for key in ("checkpoint", "onnx_dir", "engine_dir"):  # paths travel (Ray, digests) as text
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, key, os.fspath(value))

    def fields(self) -> dict[str, Any]:
        """Plain fields for a Ray actor or a digest; ``workspace_mb`` / ``prefix`` only when set,
        so digests of specs written before they existed do not change."""
        out = asdict(self)
        if self.workspace_mb is None:
            out.pop("workspace_mb")
        if self.prefix == "model":
            out.pop("prefix")
        return out

    def open(self) -> BaseBackend:
        """Build the backend (see :func:`get_backend`); use it as a context manager."""
        return open_backend(self)


def get_backend(name: str = "auto", precision: str = "fp32", **kw: Any) -> BaseBackend:
    """Build a backend by name (``auto``, ``tensorrt``, ``onnxruntime[-gpu]``, ``torch[-cuda]``);
    ``kw`` are the other :class:`BackendSpec` fields (checkpoint, onnx_dir, engine_dir, device,
    batch_size, cuda_graphs, workspace_mb, prefix)."""
    return open_backend(BackendSpec(name, precision, **kw))


def open_backend(spec: BackendSpec) -> BaseBackend:
    """The backend ``spec`` names: ``auto`` takes the first of :data:`ORDER` that is installed,
    has its artifact and runs the precision; a named one fails in one line if it cannot."""
    precision, device = spec.precision, spec.device
    if precision not in TORCH_PRECISIONS:
        raise EdgedistalError(f"unknown precision {precision!r}", "choose from fp32, fp16, int8 (bf16: torch)")
    name = ALIASES.get(spec.name, spec.name)
    ckpt = Path(spec.checkpoint) if spec.checkpoint else None
    onnx = Path(spec.onnx_dir) if spec.onnx_dir else None
    eng = Path(spec.engine_dir) if spec.engine_dir else None
    prefix = spec.prefix
    if ckpt is not None and not ckpt.exists():
        raise EdgedistalError(f"{ckpt}: checkpoint not found", "train one with `edgedistal train`")
    if device and device.startswith("cuda") and not _cuda():  # never fall back to the CPU silently
        raise EdgedistalError(f"device {device!r} requested but CUDA is not available here",
                              "pass --device cpu, or leave --device out to use the best backend here")
    avail = available_backends()
    if name == "auto":
        reasons = []
        if device == "cpu":
            avail = [c for c in avail if c not in GPU_BACKENDS]
        for cand in avail:
            why = _artifact(cand, precision, ckpt, onnx, eng, prefix)
            if why is None:
                backend = _make(cand, spec)
                log.info("backend auto: picked %s (%s, %s)", cand, backend.info.device, backend.info.detail)
                return backend
            reasons.append(f"{cand}: {why}")
        raise EdgedistalError(
            f"no backend can run {precision} here ({'; '.join(reasons)})",
            "pass --checkpoint (torch), --onnx-dir from `edgedistal export` or --engine-dir from "
            "`edgedistal engines` holding that precision",
        )
    if name in ("onnxruntime", "torch") and device and device.startswith("cuda"):
        name = f"{name}-gpu" if name == "onnxruntime" else "torch-cuda"
    if name not in ORDER:
        raise EdgedistalError(f"unknown backend {name!r}", f"choose from auto, {', '.join(ORDER)}")
    if name not in avail:
        if name == "tensorrt":
            from edgedistal.runtime.trt_env import import_tensorrt

            import_tensorrt()  # raises MissingDependencyError with the install hint
            from edgedistal.runtime.trt_backend import _cudart

            _cudart()
            raise EdgedistalError("tensorrt backend needs a CUDA GPU", "use --backend onnxruntime or torch")
        raise EdgedistalError(f"backend {name!r} is not available here (available: {', '.join(avail)})",
                              "install its runtime or pick another --backend")
    why = _artifact(name, precision, ckpt, onnx, eng, prefix)
    if why:
        raise EdgedistalError(f"backend {name!r} cannot run {precision}: {why}",
                              "export/build the missing artifact or pick another backend")
    return _make(name, spec)


def _make(cand: str, spec: BackendSpec) -> BaseBackend:
    precision, device, batch_size, prefix = spec.precision, spec.device, spec.batch_size, spec.prefix
    onnx = Path(spec.onnx_dir) if spec.onnx_dir else None
    eng = Path(spec.engine_dir) if spec.engine_dir else None
    if cand in GPU_BACKENDS:
        dev = device if device and device.startswith("cuda") else "cuda"
    else:  # the CPU backends; torch also runs on Apple MPS when asked for it
        dev = "mps" if cand == "torch" and device == "mps" else "cpu"
    from edgedistal.runtime.artifacts import resolve

    backend: BaseBackend
    if cand == "tensorrt":
        from edgedistal.runtime.trt_backend import TrtBackend

        art = resolve(precision, None, eng, prefix)
        assert art is not None and art.engine is not None
        backend = TrtBackend(art.engine, precision, batch_size, dev)
        backend.serves_embedder = prefix == "embedder"
        return backend
    if cand.startswith("onnxruntime"):
        from edgedistal.runtime.ort_backend import OrtBackend

        art = resolve(precision, onnx, eng, prefix)
        assert art is not None and art.onnx is not None
        backend = OrtBackend(art.onnx, precision, dev, batch_size, workspace_mb=spec.workspace_mb)
        backend.serves_embedder = prefix == "embedder"
        return backend
    from edgedistal.models.embedder import load_model
    from edgedistal.runtime.torch_backend import TorchBackend

    assert spec.checkpoint is not None
    detector, _ = load_model(Path(spec.checkpoint))  # a detector or an embedder: both serve (prob, embedding)
    return TorchBackend(detector, precision, dev, batch_size, cuda_graphs=spec.cuda_graphs)
