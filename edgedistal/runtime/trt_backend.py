"""TensorRT 10 backend: a serialized engine run with cuda-python buffers on one CUDA stream.

Per micro-batch: copy images into a pinned host buffer (``cudaHostAlloc``), ``cudaMemcpyAsync``
it to the device, ``set_input_shape`` + ``execute_async_v3``, copy both outputs back
asynchronously and synchronise the stream. Buffers are sized once for the engine profile's max
batch. ``tensorrt`` and ``cuda.bindings`` are imported lazily; without them construction raises
:class:`~edgedistal.errors.MissingDependencyError`.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.runtime.base import BackendInfo, BaseBackend
from edgedistal.runtime.trt_env import check_engine_compatible, gpu_identity, import_tensorrt

log = logging.getLogger(__name__)


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise MissingDependencyError("cuda-python is not installed",
                                     "pip install cuda-python (cuda.bindings)") from exc
    return cudart


def _check(result: Any) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple, raising on a CUDA error."""
    cudart = _cudart()
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error: {cudart.cudaGetErrorString(err)[1]!r}")
    return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)


class _Pinned:
    """A pinned host buffer viewed as a NumPy array, plus its device twin."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        cudart = _cudart()
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.host_ptr = _check(cudart.cudaHostAlloc(self.nbytes, cudart.cudaHostAllocDefault))
        buf = (ctypes.c_byte * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(buf, dtype=self.dtype).reshape(shape)
        self.device_ptr = _check(cudart.cudaMalloc(self.nbytes))

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device_ptr)
        cudart.cudaFreeHost(self.host_ptr)


class TrtBackend(BaseBackend):
    """Runs ``model_<precision>.engine`` from an engines folder."""

    size_source = "the engine's sidecar"

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        precision: str = "fp32",
        batch_size: int = 32,
        device: str | None = None,
    ):
        trt = import_tensorrt()
        cudart = _cudart()
        path = Path(engine_path)
        if not path.exists():
            raise EdgedistalError(f"{path}: engine not found",
                                  "build it with `edgedistal engines --export-dir export --out engines`")
        dev_id = int(str(device).split(":")[1]) if device and ":" in str(device) else 0
        _check(cudart.cudaSetDevice(dev_id))
        current = {"tensorrt": trt.__version__, **gpu_identity()}
        meta = check_engine_compatible(path, current)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self._logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EdgedistalError(f"{path}: TensorRT could not deserialize the engine",
                                  "rebuild it with `edgedistal engines`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1 or set(self.outputs) != {"prob", "embedding"}:
            raise EdgedistalError(f"{path}: unexpected engine I/O {names}",
                                  "build engines from `edgedistal export` models")
        self.input_name = self.inputs[0]
        min_s, opt_s, max_s = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.max_batch = int(max_s[0])
        self.min_batch = int(min_s[0])
        self.image_size = int(max_s[1])
        self.batch_size = max(self.min_batch, min(int(batch_size), self.max_batch))
        emb_dim = int(self.engine.get_tensor_shape("embedding")[1])
        s = self.image_size
        self.buf = {
            self.input_name: _Pinned((self.max_batch, s, s, 3), np.uint8),
            "prob": _Pinned((self.max_batch,), np.float32),
            "embedding": _Pinned((self.max_batch, emb_dim), np.float32),
        }
        for name, b in self.buf.items():
            self.context.set_tensor_address(name, int(b.device_ptr))
        self.stream = _check(cudart.cudaStreamCreate())
        detail = f"{path.name}, TensorRT {trt.__version__}, {meta.get('gpu', '?')}"
        self.info = BackendInfo("tensorrt", f"cuda:{dev_id}", precision, detail)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cudart = _cudart()
        n = len(x)
        m = max(n, self.min_batch)
        inp, pb, eb = self.buf[self.input_name], self.buf["prob"], self.buf["embedding"]
        inp.host[:n] = x
        if m > n:
            inp.host[n:m] = 0
        nbytes = m * inp.nbytes // self.max_batch
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(inp.device_ptr, inp.host_ptr, nbytes, h2d, self.stream))
        self.context.set_input_shape(self.input_name, (m, self.image_size, self.image_size, 3))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for b in (pb, eb):
            _check(cudart.cudaMemcpyAsync(b.host_ptr, b.device_ptr, m * b.nbytes // self.max_batch, d2h,
                                          self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return pb.host[:n].copy(), eb.host[:n].copy()

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._each_batch(images, self._run)

    def close(self) -> None:
        for b in getattr(self, "buf", {}).values():
            b.free()
        self.buf = {}
        if getattr(self, "stream", None) is not None:
            _cudart().cudaStreamDestroy(self.stream)
            self.stream = None
