"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers over the exported models.

The provider list comes from ``ort.get_available_providers()``: ``device="cuda"`` prefers
TensorRT EP → CUDA EP (CPU as fallback for unsupported nodes); ``device="cpu"`` uses the CPU EP.
int8 runs the QDQ model, which the CPU EP executes with int8 kernels and the TensorRT EP
compiles with explicit quantisation.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.runtime.base import BackendInfo, BaseBackend
from edgedistal.utils.machine import cpu_threads

log = logging.getLogger(__name__)


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise MissingDependencyError("onnxruntime is not installed", "pip install onnxruntime") from exc
    return ort


def gpu_providers() -> list[str]:
    """GPU execution providers this ONNX Runtime build offers (TensorRT first)."""
    avail = _ort().get_available_providers()
    return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in avail]


class OrtBackend(BaseBackend):
    """One ``InferenceSession`` over ``model_<precision>.onnx``."""

    size_source = "export.json"

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        precision: str = "fp32",
        device: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        image_size: int | None = None,
        engine_cache_dir: str | os.PathLike[str] | None = None,
        workspace_mb: int | None = None,
    ):
        ort = _ort()
        path = Path(onnx_path)
        if not path.exists():
            raise EdgedistalError(f"{path}: ONNX model not found", "run `edgedistal export` first")
        want_gpu = device not in (None, "cpu", "auto") or (device in (None, "auto") and gpu_providers())
        providers: list = []
        if want_gpu:
            gpu = gpu_providers()
            if not gpu:
                raise MissingDependencyError(
                    f"device {device!r} requested but this onnxruntime has no GPU provider",
                    "pip install onnxruntime-gpu (and remove the CPU-only onnxruntime)",
                )
            dev_id = int(str(device).split(":")[1]) if device and ":" in str(device) else 0
            for p in gpu:
                if p == "TensorrtExecutionProvider":
                    opts = {"device_id": dev_id, "trt_fp16_enable": precision == "fp16",
                            "trt_int8_enable": precision == "int8"}
                    if engine_cache_dir:
                        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache_dir))
                    if workspace_mb:  # the EP builds its engine here, so the cap applies here
                        opts["trt_max_workspace_size"] = int(workspace_mb) << 20
                    providers.append((p, opts))
                else:
                    providers.append((p, {"device_id": dev_id}))
        providers.append("CPUExecutionProvider")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = cpu_threads(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad models
            raise EdgedistalError(f"{path}: ONNX Runtime cannot load the model ({exc})",
                                  "re-export with `edgedistal export`") from exc
        self.onnx_path = path  # the bench counts the kernels ORT runs for this file
        inp = self.session.get_inputs()[0]
        outs = {o.name for o in self.session.get_outputs()}
        side = inp.shape[1] if len(inp.shape) == 4 else None
        if inp.type != "tensor(uint8)" or not {"prob", "embedding"} <= outs or not (image_size or isinstance(side, int)):
            raise EdgedistalError(
                f"{path}: not an edgedistal model (input {inp.name} {inp.type} {inp.shape}, outputs {sorted(outs)}; "
                "expected uint8 [N,S,S,3] → prob, embedding)",
                "export the detector with `edgedistal export` (its graph takes uint8 NHWC images)")
        self.input_name = inp.name
        self.image_size = int(image_size or side)
        self.batch_size = int(batch_size)
        used = self.session.get_providers()
        dev = "cuda" if used and used[0] != "CPUExecutionProvider" else "cpu"
        detail = f"{used[0]}, threads={so.intra_op_num_threads}, {path.name}"
        self.info = BackendInfo("onnxruntime", dev, precision, detail)

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            try:
                p, e = self.session.run(["prob", "embedding"], {self.input_name: np.ascontiguousarray(x, dtype=np.uint8)})
            except Exception as exc:  # ORT's own types: a graph that does not fit its declared input
                raise EdgedistalError(f"{self.onnx_path}: ONNX Runtime failed to run the model "
                                      f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:160]})",
                                      "re-export it with `edgedistal export`") from exc
            return p, e

        return self._each_batch(images, run)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
