"""The inference contract every backend honours.

A batch of uint8 RGB images ``[N, H, W, 3]`` goes in; fake probabilities ``[N]`` (float32) and
embeddings ``[N, D]`` (float32, L2-normalised) come out as NumPy arrays. Backends differ only
in where and how fast they run: torch (CPU/CUDA), ONNX Runtime (CPU/CUDA/TensorRT EPs),
TensorRT engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgedistal.errors import EdgedistalError

#: The one precision vocabulary: what export writes, engines build and every backend serves.
PRECISIONS = ("fp32", "fp16", "int8")
#: torch also runs bf16 autocast (a training/scoring mode, not an exported artifact).
TORCH_PRECISIONS = (*PRECISIONS, "bf16")


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


def check_probs(probs: np.ndarray, where: str) -> None:
    """Refuse outputs that are not probabilities (NaN, inf, outside [0, 1]): a foreign or broken
    model must not be served as verdicts. A few vector ops per batch: nothing next to inference."""
    p = np.asarray(probs)
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        bad = p[~(np.isfinite(p) & (p >= 0) & (p <= 1))].ravel()[0]
        raise EdgedistalError(f"{where}: the model returned {float(bad)!r}, not a probability in [0, 1]",
                              "use a model written by `edgedistal export` / `edgedistal engines` (or re-export it)")


class BaseBackend:
    """The template the shipped backends share (as Polygraphy's runners do): :meth:`infer` checks
    the input once, then calls the backend's own :meth:`_infer`; :meth:`_each_batch` is the
    micro-batch loop. Test fakes need only satisfy :class:`Backend`."""

    info: BackendInfo
    image_size: int
    batch_size: int
    #: Where the expected input size comes from, for the error's fix line.
    size_source = "the model's config"
    #: An embedder has no detector head: its probabilities are all NaN by contract (set by select).
    serves_embedder = False

    def check_input(self, images: np.ndarray) -> None:
        """Refuse anything but ``[N, S, S, 3]`` at this model's side ``S``, with one line."""
        s = self.image_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise EdgedistalError(f"expected uint8 images [N,{s},{s},3], got {images.shape}",
                                  f"resize images to the model's input size (see {self.size_source})")

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``[N,H,W,3]`` → (probabilities ``[N]``, embeddings ``[N,D]``)."""
        self.check_input(images)
        probs, embs = self._infer(images)
        if not (self.serves_embedder and np.isnan(probs).all()):
            check_probs(probs, self.info.detail if hasattr(self, "info") else type(self).__name__)
        return probs, embs

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _each_batch(self, images: np.ndarray,
                    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """``run`` on ``batch_size`` slices, outputs concatenated in order."""
        probs, embs = [], []
        for s in range(0, len(images), self.batch_size):
            p, e = run(images[s : s + self.batch_size])
            probs.append(np.asarray(p, np.float32))
            embs.append(np.asarray(e, np.float32))
        return np.concatenate(probs), np.concatenate(embs)

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free what the backend holds (sessions, buffers, streams); ``with backend:`` calls it."""
