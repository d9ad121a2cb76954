"""The inference contract every backend honours.

A batch of uint8 RGB images ``[N, H, W, 3]`` goes in; fake probabilities ``[N]`` (float32) and
embeddings ``[N, D]`` (float32, L2-normalised) come out as NumPy arrays. Backends differ only
in where and how fast they run: torch (CPU/CUDA), ONNX Runtime (CPU/CUDA/TensorRT EPs),
TensorRT engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class BackendInfo:
    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # one of PRECISIONS (or "bf16" for torch)
    detail: str = ""  # e.g. execution provider, CUDA-graph on/off, engine path


@runtime_checkable
class Backend(Protocol):
    info: BackendInfo
    image_size: int

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``[N,H,W,3]`` → (probabilities ``[N]``, embeddings ``[N,D]``)."""
        ...

    def close(self) -> None: ...
