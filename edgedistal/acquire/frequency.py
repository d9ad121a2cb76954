"""Training-free frequency features: a label-free embedding for the cold start.

Generated and blended faces leave traces in the high frequencies (up-sampling, blending
boundaries). The azimuthally averaged power spectrum of the grey image (Durall et al. 2020)
separates many fakes with a handful of labels, and coarse log-DCT statistics (Frank et al.
2020) add the block structure of compression. Both cost one transform per image, so they can
embed a million-frame pool before any model is trained. Inputs are uint8 NHWC batches.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # RGB; the order barely matters here


def grey(images: np.ndarray) -> np.ndarray:
    """``[N,H,W]`` float32 luma of uint8 ``[N,H,W,3]`` images, in [0, 1]."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N,H,W,3], got shape {x.shape}")
    return (x.astype(np.float32) @ _GREY) / 255.0


@lru_cache(maxsize=8)
def _radial_bins(h: int, w: int, bins: int) -> np.ndarray:
    """``[H*W, bins]`` averaging matrix: column b averages the spectrum over ring b (0 = DC);
    a dense matmul is one BLAS call per chunk, faster than a bincount per image."""
    yy, xx = np.indices((h, w), dtype=np.float32)
    r = np.hypot(yy - h // 2, xx - w // 2)
    r_max = float(r.max())  # up to the corners: the diagonal Nyquist (checkerboard) too
    # the corner itself lands in the last ring (float32 rounding once put it one past the end)
    ring = np.minimum(np.floor(r / r_max * bins).astype(np.int64), bins - 1).ravel()
    m = np.zeros((h * w, bins), np.float32)
    m[np.arange(h * w), ring] = 1.0
    return m / np.maximum(m.sum(0, keepdims=True), 1.0)


def _chunk(images: np.ndarray) -> int:
    """Images per FFT block: ~128 MB of complex128 whatever the resolution."""
    return max(1, (1 << 23) // max(1, images.shape[1] * images.shape[2]))


def azimuthal_spectrum(images: np.ndarray, bins: int = 32, chunk: int | None = None) -> np.ndarray:
    """``[N, bins]``: log power of the grey image's 2-D FFT averaged over rings of equal radius,
    from DC out to the corner (diagonal Nyquist), each profile min-max scaled to [0, 1]
    (as in Durall et al.)."""
    n, chunk = len(images), chunk or _chunk(images)
    out = np.empty((n, bins), np.float32)
    for a in range(0, n, chunk):
        g = grey(images[a : a + chunk])
        g -= g.mean(axis=(1, 2), keepdims=True)
        f = np.fft.fftshift(np.fft.fft2(g), axes=(1, 2))
        logp = np.log(np.abs(f) ** 2 + 1e-8).astype(np.float32)
        h, w = g.shape[1:]
        prof = logp.reshape(len(g), h * w) @ _radial_bins(h, w, bins)
        lo, hi = prof.min(1, keepdims=True), prof.max(1, keepdims=True)
        out[a : a + chunk] = (prof - lo) / np.maximum(hi - lo, 1e-8)
    return out


def log_dct_stats(images: np.ndarray, grid: int = 8, chunk: int | None = None) -> np.ndarray:
    """``[N, grid*grid]``: mean log |DCT-II| of the grey image over a ``grid``×``grid`` partition
    of the frequency plane (low frequencies top-left): Frank et al.'s log-DCT spectrum, pooled."""
    from scipy.fft import dctn

    n, chunk = len(images), chunk or _chunk(images)
    out = np.empty((n, grid * grid), np.float32)
    for a in range(0, n, chunk):
        g = grey(images[a : a + chunk])
        h, w = g.shape[1:]
        c = np.log(np.abs(dctn(g, type=2, axes=(1, 2), norm="ortho")) + 1e-6)
        hh, ww = (h // grid) * grid, (w // grid) * grid
        c = c[:, :hh, :ww].reshape(len(g), grid, hh // grid, grid, ww // grid).mean(axis=(2, 4))
        out[a : a + chunk] = c.reshape(len(g), -1)
    return out


def frequency_features(images: np.ndarray, bins: int = 32, dct: bool = False) -> np.ndarray:
    """The cold-start embedding: spectrum profile (+ log-DCT stats), each column standardised
    over the pool, rows L2-normalised so k-center / TypiClust / ProbCover distances are comparable."""
    parts = [azimuthal_spectrum(images, bins)]
    if dct:
        parts.append(log_dct_stats(images))
    x = np.concatenate(parts, axis=1)
    x -= x.mean(0, keepdims=True)
    x /= x.std(0, keepdims=True) + 1e-6
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-8
    return x.astype(np.float32)
