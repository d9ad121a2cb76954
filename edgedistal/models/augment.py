"""Batched deepfake augmentations in torch, on whatever device the batch lives on.

Training is compute-bound on a GPU, so augmentations run as a handful of batched tensor ops on
the device (no DataLoader workers, no per-image Python). They target what a deepfake detector
must ignore: pose/crop jitter, colour shifts, blur and JPEG re-compression, while keeping the
blending seams and texture statistics it must see. Input and output: float NCHW in [0, 1].
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LEVELS = ("none", "light", "standard")


@dataclass(frozen=True)
class AugmentSpec:
    flip: float = 0.5  # probability of a horizontal flip
    shift: float = 0.0  # max translation, fraction of the side
    scale: tuple[float, float] = (1.0, 1.0)  # zoom range (>1 crops in)
    jitter: float = 0.0  # probability of brightness/contrast/saturation jitter
    jitter_strength: float = 0.2
    blur: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    jpeg: float = 0.0  # probability of JPEG re-compression
    jpeg_quality: tuple[int, int] = (50, 95)


def spec_for(level: str) -> AugmentSpec | None:
    """The named recipes; ``none`` returns None (no augmentation at all)."""
    if level == "none":
        return None
    if level == "light":  # flips + small integer shifts: the recipe timed on the H200
        return AugmentSpec(flip=0.5, shift=0.0625)
    if level == "standard":
        return AugmentSpec(
            flip=0.5, shift=0.0625, scale=(1.0, 1.12), jitter=0.5, blur=0.15, jpeg=0.25
        )
    raise ValueError(f"unknown augment level {level!r}; use one of {', '.join(LEVELS)}")


class BatchAugment:
    """Apply an :class:`AugmentSpec` to a float NCHW batch in [0, 1] (training mode only)."""

    def __init__(self, spec: AugmentSpec):
        self.spec = spec
        self._jpeg_on_device = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        b = x.shape[0]
        if s.flip > 0:
            m = torch.rand(b, device=x.device) < s.flip
            x = torch.where(m.view(b, 1, 1, 1), x.flip(3), x)
        if s.shift > 0 or s.scale != (1.0, 1.0):
            x = self._affine(x)
        if s.jitter > 0:
            x = self._colour(x)
        if s.blur > 0:
            x = self._blur(x)
        if s.jpeg > 0:
            x = self._jpeg(x)
        return x

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        """Random zoom-in + translation in one ``grid_sample`` (reflection at the borders)."""
        s = self.spec
        b, _, h, w = x.shape
        lo, hi = s.scale
        zoom = lo + (hi - lo) * torch.rand(b, device=x.device)
        # integer pixel shifts keep the image exact (no resampling blur) when zoom == 1
        px = torch.randint(-int(s.shift * w), int(s.shift * w) + 1, (b, 2), device=x.device)
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = 1.0 / zoom
        theta[:, 1, 1] = 1.0 / zoom
        theta[:, 0, 2] = px[:, 0].to(x.dtype) * 2.0 / w
        theta[:, 1, 2] = px[:, 1].to(x.dtype) * 2.0 / h
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        b = x.shape[0]
        on = (torch.rand(b, 1, 1, 1, device=x.device) < s.jitter).to(x.dtype)

        def factor() -> torch.Tensor:
            f = 1.0 + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1) * s.jitter_strength
            return on * f + (1 - on)

        x = x * factor()  # brightness
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = grey + (x - grey) * factor()  # saturation
        mean = grey.mean(dim=(2, 3), keepdim=True)
        x = mean + (x - mean) * factor()  # contrast
        return x.clamp_(0.0, 1.0)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample Gaussian blur as one grouped convolution."""
        s = self.spec
        b, c, h, w = x.shape
        on = torch.rand(b, device=x.device) < s.blur  # no .any() check: it would sync the GPU
        lo, hi = s.blur_sigma
        sigma = lo + (hi - lo) * torch.rand(b, 1, device=x.device, dtype=x.dtype)
        r = max(1, math.ceil(2 * hi))
        t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype).view(1, -1)
        k1 = torch.exp(-(t**2) / (2 * sigma**2))
        k1 = k1 / k1.sum(dim=1, keepdim=True)  # [B, K]
        k = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0).unsqueeze(1)  # [B*C,1,K,K]
        y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect"), k, groups=b * c)
        y = y.view(b, c, h, w)
        return torch.where(on.view(b, 1, 1, 1), y, x)

    def _jpeg(self, x: torch.Tensor) -> torch.Tensor:
        """Re-compress a random subset with one quality per batch (nvjpeg on CUDA, else OpenCV)."""
        s = self.spec
        b = x.shape[0]
        idx = torch.nonzero(torch.rand(b, device=x.device) < s.jpeg).flatten()
        if idx.numel() == 0:
            return x
        q = int(torch.randint(s.jpeg_quality[0], s.jpeg_quality[1] + 1, (1,)).item())
        sub = (x[idx] * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        out = self._jpeg_cuda(sub, q) if x.is_cuda and self._jpeg_on_device else None
        if out is None:
            out = _jpeg_cv2(sub.permute(0, 2, 3, 1).cpu().numpy(), q)
            out = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2)
        x = x.clone()
        x[idx] = out.to(x.dtype) / 255.0
        return x

    def _jpeg_cuda(self, sub: torch.Tensor, quality: int) -> torch.Tensor | None:
        try:  # torchvision >= 0.19 encodes and decodes lists of images on the GPU (nvjpeg)
            from torchvision.io import decode_jpeg, encode_jpeg

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                enc = encode_jpeg(list(sub.contiguous().unbind(0)), quality=quality)
                # the encoded bytes must sit on the host for decode_jpeg, whatever its device
                return torch.stack(decode_jpeg([e.cpu() for e in enc], device=sub.device))
        except Exception as exc:  # no nvjpeg / older or newer torchvision: use OpenCV from now on
            warnings.warn(f"GPU JPEG augmentation unavailable ({exc}); using OpenCV", stacklevel=3)
            self._jpeg_on_device = False
            return None


def _jpeg_cv2(images: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of uint8 NHWC RGB images with OpenCV (which encodes BGR)."""
    import cv2

    out = np.empty_like(images)
    for i, im in enumerate(images):
        bgr = np.ascontiguousarray(im[..., ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] if ok else im
    return out
