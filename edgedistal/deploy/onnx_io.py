"""The exported graph's I/O names and a CPU ONNX Runtime run of it, for the builders' checks
(export parity, int8 method choice, engine fallbacks). Serving goes through ``runtime.ort_backend``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgedistal.errors import MissingDependencyError
from edgedistal.utils.machine import cpu_threads

INPUT_NAME = "images"
OUTPUT_NAMES = ("prob", "embedding")


def ort_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """A CPU ONNX Runtime session (for checks; serving goes through ``runtime.ort_backend``)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise MissingDependencyError("onnxruntime is not installed", "pip install onnxruntime") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = cpu_threads(threads)
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(path: str | os.PathLike[str], images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(prob, embedding)`` of a model file over ``images`` (uint8 NHWC), in batches."""
    sess = ort_session(path)
    probs, embs = [], []
    for s in range(0, len(images), batch):
        p, e = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(images[s : s + batch])})
        probs.append(p)
        embs.append(e)
    return np.concatenate(probs).astype(np.float32), np.concatenate(embs).astype(np.float32)
