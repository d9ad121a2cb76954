"""PyTorch backend: CPU or CUDA, fp32/fp16/bf16, channels_last, optional CUDA graphs.

On CUDA, :meth:`TorchBackend.infer` pipelines its micro-batches: the host copies batch *i+1*
into one of two pinned buffers and a side stream uploads it while the compute stream runs batch
*i*; outputs come back into pinned memory with non-blocking copies and the host synchronises
once per call. So the scorer's speed approaches the model's own speed on device-resident data.

CUDA graphs (``cuda_graphs=True``) capture the forward once per micro-batch size; a partial last
batch is zero-padded to that size, so one capture serves the whole pool.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from edgedistal.errors import EdgedistalError
from edgedistal.models.predict import resolve_device  # one device rule for training and serving
from edgedistal.models.registry import DeployModel, Detector
from edgedistal.runtime.base import BackendInfo, BaseBackend

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(BaseBackend):
    """The deploy graph in PyTorch. ``infer`` takes any N and micro-batches by ``batch_size``."""

    def __init__(
        self,
        detector: Detector,
        precision: str = "fp32",
        device: str | None = None,
        batch_size: int = 32,
        cuda_graphs: bool = False,
        channels_last: bool | None = None,
    ):
        self.serves_embedder = getattr(detector, "kind", None) == "embedder"  # no head: NaN probabilities
        if precision not in DTYPES:
            raise EdgedistalError(
                f"torch backend has no {precision!r} mode",
                "use fp32, fp16 or bf16 with torch; int8 runs through onnxruntime or tensorrt",
            )
        self.device = resolve_device(device)
        if self.device.type == "cpu" and precision == "fp16":
            log.warning("fp16 on CPU is slow and poorly supported; consider bf16 or fp32")
        self.dtype = DTYPES[precision]
        self.batch_size = int(batch_size)
        self.image_size = detector.config.image_size
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        if channels_last is None:  # on CPU (oneDNN) channels_last measured 20x slower at batch 1
            channels_last = self.device.type == "cuda"
        # a private copy: Module.to() would otherwise cast/move the caller's detector in place
        model = DeployModel(copy.deepcopy(detector)).eval().to(self.device, dtype=self.dtype)
        if channels_last:
            # The NHWC uint8 input permuted to NCHW is already channels_last in memory.
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._pinned_in: list[torch.Tensor] = []
        self._dev_in: list[torch.Tensor] = []
        self._pinned_out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None, None, None]
        self._micro = 0
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels
            self._compute = torch.cuda.Stream(self.device)
            self._copy = torch.cuda.Stream(self.device)
            # host → pinned copies in a few threads (numpy releases the GIL): one thread's memcpy
            # bandwidth can fall behind a fast GPU on a small CNN
            self._copier = ThreadPoolExecutor(4, thread_name_prefix="edgedistal-pin")
        detail = f"channels_last={channels_last}, cuda_graphs={self.cuda_graphs}, batch={self.batch_size}"
        self.info = BackendInfo("torch", str(self.device), precision, detail)

    # -- helpers --------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return self.model(x)

    def _graph(self, n: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Capture (once) the forward for batch ``n`` on a static input buffer."""
        if n not in self._graphs:
            static = torch.zeros(n, self.image_size, self.image_size, 3, dtype=torch.uint8, device=self.device)
            warm = torch.cuda.Stream(self.device)
            warm.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(warm):
                for _ in range(3):  # cudnn autotune + allocator warm-up outside the capture
                    self._forward(static)
            torch.cuda.current_stream(self.device).wait_stream(warm)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                outs = self.model(static)
            self._graphs[n] = (graph, static, outs)
            log.info("captured CUDA graph for batch %d", n)
        return self._graphs[n]

    def _buffers(self, slot: int, n: int) -> None:
        bs, sz = self.batch_size, self.image_size
        if not self._pinned_in:
            self._pinned_in = [torch.empty(bs, sz, sz, 3, dtype=torch.uint8).pin_memory() for _ in range(2)]
            self._dev_in = [torch.empty(bs, sz, sz, 3, dtype=torch.uint8, device=self.device) for _ in range(2)]
            self._copied = [torch.cuda.Event(), torch.cuda.Event()]  # H2D of buffer k finished
            self._consumed = [torch.cuda.Event(), torch.cuda.Event()]  # compute done with buffer k
        if self._pinned_out[slot] is None or self._pinned_out[slot][0].shape[0] < n:
            d = self._embed_dim()
            self._pinned_out[slot] = (torch.empty(n, dtype=torch.float32).pin_memory(),
                                      torch.empty(n, d, dtype=torch.float32).pin_memory())

    def _host_copy(self, dst: np.ndarray, src: np.ndarray) -> None:
        """``dst[:] = src`` split across the copy threads (large batches only)."""
        n = len(dst)
        if n < 16:
            dst[:] = src
            return
        step = -(-n // 4)
        parts = [(a, min(n, a + step)) for a in range(0, n, step)]
        list(self._copier.map(lambda ab: dst.__setitem__(slice(*ab), src[ab[0] : ab[1]]), parts))

    def _embed_dim(self) -> int:
        return int(self.model.detector.embed_dim)

    # -- Backend template (BaseBackend.infer checks the input, then calls _infer) ---------------
    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.device.type == "cpu":
            return self._each_batch(images, self._forward_np)
        return self._infer_cuda(images)

    def _forward_np(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # memmap slices (the image cache) are read-only: torch wants a writable buffer
        x = np.ascontiguousarray(x) if x.flags.writeable else np.array(x, order="C")
        p, e = self._forward(torch.from_numpy(x))
        return p.float().numpy(), e.float().numpy()

    def infer_chunks(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Results of ``infer`` for each chunk, in order, pipelined *across* chunks on CUDA.

        The host synchronises on chunk *i* only after chunk *i+1* is queued, so the GPU never
        idles while the host copies results out or prepares the next chunk (the scorer uses this).
        """
        if self.device.type == "cpu":
            for chunk in chunks:
                yield self.infer(chunk)
            return
        if self.cuda_graphs:
            with torch.cuda.stream(self._compute):
                self._graph(self.batch_size)  # capture before any copy is in flight
        self._compute.synchronize()  # a previous, abandoned pipeline may still be in flight
        self._copy.synchronize()
        self._micro = 0
        pending: deque[tuple[torch.cuda.Event, int, int]] = deque()
        for i, chunk in enumerate(chunks):
            self.check_input(chunk)
            slot = i % 3  # output ring: slot i is read out before chunk i+3 reuses it
            self._enqueue(chunk, slot)
            done = torch.cuda.Event()
            done.record(self._compute)
            pending.append((done, slot, len(chunk)))
            while len(pending) > 1:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def _collect(self, done: torch.cuda.Event, slot: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        done.synchronize()
        out_p, out_e = self._pinned_out[slot]
        return out_p[:n].numpy().copy(), out_e[:n].numpy().copy()

    def _infer_cuda(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return next(self.infer_chunks([images]))

    def _enqueue(self, images: np.ndarray, slot: int) -> None:
        """Queue one chunk: pinned double-buffered uploads on the copy stream, compute on the
        compute stream, results into output slot ``slot`` (non-blocking)."""
        n, bs = len(images), self.batch_size
        self._buffers(slot, n)
        out_p, out_e = self._pinned_out[slot]
        copied, consumed = self._copied, self._consumed
        for s in range(0, n, bs):
            j, m = self._micro, min(bs, n - s)
            k = j % 2
            self._micro += 1
            if j >= 2:
                copied[k].synchronize()  # the host may overwrite pinned buffer k again
            host = self._pinned_in[k]
            self._host_copy(host.numpy()[:m], images[s : s + m])
            with torch.cuda.stream(self._copy):
                if j >= 2:
                    self._copy.wait_event(consumed[k])  # compute is done reading dev buffer k
                self._dev_in[k][:m].copy_(host[:m], non_blocking=True)
                copied[k].record(self._copy)
            with torch.cuda.stream(self._compute):
                self._compute.wait_event(copied[k])
                if self.cuda_graphs:
                    graph, static, (gp, ge) = self._graph(bs)
                    static[:m].copy_(self._dev_in[k][:m])
                    if m < bs:
                        static[m:].zero_()
                    graph.replay()
                    p, e = gp[:m], ge[:m]
                else:
                    p, e = self._forward(self._dev_in[k][:m])
                consumed[k].record(self._compute)
                out_p[s : s + m].copy_(p, non_blocking=True)
                out_e[s : s + m].copy_(e, non_blocking=True)

    def close(self) -> None:
        if self.device.type == "cuda":
            self._copier.shutdown(wait=True)
        self._graphs.clear()
        self._pinned_in, self._dev_in, self._pinned_out = [], [], [None, None, None]
