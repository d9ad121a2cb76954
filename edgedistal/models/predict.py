"""Batch inference with a :class:`Detector`: uint8 images in, fake probabilities + embeddings out.

It runs the model through :class:`DeployModel`, the exact graph `edgedistal export` writes, so
torch predictions here match the ONNX/TensorRT engines up to numerics. ``mc_dropout=T`` keeps
dropout active for T stochastic passes (BALD); batch norm stays in eval mode.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from edgedistal.models.registry import DeployModel, Detector


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or None) → CUDA if present, else Apple MPS, else CPU; anything else goes to
    torch. The one device rule: training, scoring and the torch serving backend all use it."""
    if name in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError(f"device {name!r} requested but CUDA is not available", "use --device cpu or auto")
    return dev


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``amp`` in {off, bf16, fp16, auto}; ``auto`` = bf16 where the hardware
    has it (CUDA, or a CPU with AVX-512 BF16 / AMX), fp16 on older CUDA, fp32 otherwise."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    if amp in ("off", "fp32", "none", ""):
        return None
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            from edgedistal.utils.machine import cpu_has_fast_bf16

            return torch.bfloat16 if cpu_has_fast_bf16() else None
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise ValueError(f"unknown amp mode {amp!r}; use auto, bf16, fp16 or off")


def _set_dropout(model: nn.Module, active: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d | nn.AlphaDropout):
            m.train(active)


def _batches(x: np.ndarray | torch.Tensor, batch_size: int, device: torch.device):
    """Yield uint8 NHWC device tensors; host batches go through pinned memory on CUDA."""
    for s in range(0, len(x), batch_size):
        chunk = x[s : s + batch_size]
        if isinstance(chunk, np.ndarray):
            # memmap slices are read-only views: copy (the copy is needed for pinning anyway)
            chunk = torch.from_numpy(np.array(chunk, copy=not chunk.flags.writeable, order="C"))
            if device.type == "cuda":
                chunk = chunk.pin_memory()
        yield chunk.to(device, non_blocking=True)


@torch.inference_mode()
def predict(
    model: Detector,
    x: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    mc_dropout: int = 0,
    amp: str = "off",
    channels_last: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Score uint8 NHWC RGB images ``x`` (numpy, memmap or tensor) at the model's image size.

    Returns ``(probs [N] float32, embeddings [N, D] float32)``; with ``mc_dropout=T > 0`` the
    probabilities are ``[T, N]`` (one row per stochastic pass) and the embeddings come from the
    deterministic pass. ``amp`` defaults to fp32 so outputs match the exported ONNX model.
    The model is moved to ``device`` and left in eval mode.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if x.ndim != 4 or x.shape[-1] != 3:
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError(f"predict expects uint8 [N,H,W,3] images, got shape {tuple(x.shape)}")
    model.eval().to(dev)
    if channels_last and (dev.type == "cuda" or amp_dtype(dev, amp) is not None):
        model.to(memory_format=torch.channels_last)
    deploy = DeployModel(model).to(dev).eval()
    n, d = len(x), model.embed_dim
    probs = np.empty((max(mc_dropout, 1), n) if mc_dropout else (n,), np.float32)
    embs = np.empty((n, d), np.float32)
    ctx = autocast(dev, amp)
    pos = 0
    for xb in _batches(x, batch_size, dev):
        k = xb.shape[0]
        with ctx:
            p, e = deploy(xb)
            embs[pos : pos + k] = e.float().cpu().numpy()
            if mc_dropout:
                _set_dropout(model, True)
                try:
                    for t in range(mc_dropout):
                        probs[t, pos : pos + k] = deploy(xb)[0].float().cpu().numpy()
                finally:
                    _set_dropout(model, False)
            else:
                probs[pos : pos + k] = p.float().cpu().numpy()
        pos += k
    return probs, embs


def manifest_probs(
    model: Detector,
    manifest,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Fake probabilities for every row of ``manifest`` (images via the uint8 cache). Not
    :func:`edgedistal.acquire.scorer.score_manifest`, which streams any backend and writes files."""
    from edgedistal.data.images import load_images

    images = load_images(manifest.paths, model.config.image_size, progress=progress)
    probs, _ = predict(model, images, batch_size=batch_size, device=device)
    return probs


def evaluate_checkpoint(
    checkpoint: str,
    manifest,
    *,
    split: str | None = "test",
    batch_size: int = 256,
    device: str = "auto",
    split_seed: int = 0,
    progress: bool = False,
) -> dict:
    """Frame + video metrics of a checkpoint on one split of ``manifest`` (a Manifest).

    The manifest is split with :func:`ensure_split` (same seed as `edgedistal train`), so an
    unsplit manifest gives the same held-out groups the training run never saw.
    """
    from edgedistal.data.split import ensure_split
    from edgedistal.errors import EdgedistalError
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.models.registry import load_checkpoint

    model, payload = load_checkpoint(checkpoint)
    part = manifest
    if split and split != "all":
        part = ensure_split(manifest, seed=split_seed).split(split)
        if len(part) == 0:
            raise EdgedistalError(f"the manifest has no {split!r} rows", "pick --split train/val/test or all")
    probs = manifest_probs(model, part, batch_size=batch_size, device=device, progress=progress)
    df = part.df
    out = compute_metrics(df["label"].to_numpy(), probs, df["video"].to_numpy())
    out["checkpoint"] = str(checkpoint)
    out["split"] = split or "all"
    out["model"] = payload.get("config", {})
    return out
