"""Decode + resize images once into a uint8 NHWC array, cached on disk as a memory-mappable .npy.

Training epochs, scoring and benchmarks all read this cache instead of re-decoding JPEGs, which
on a 2-core machine costs more than the forward pass of a small CNN. Channel order is RGB.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import atomic_path, remove_stale_temps


def cache_dir() -> Path:
    """``$EDGEDISTAL_CACHE`` or ``~/.cache/edgedistal``."""
    return Path(os.environ.get("EDGEDISTAL_CACHE", Path.home() / ".cache" / "edgedistal"))


#: Images with a side below this are refused (a 1×1 "face" is a broken file, not data).
MIN_SIDE = 8


def image_problem(path: str, reduced: bool = False) -> tuple[np.ndarray | None, str]:
    """``(BGR image, "")`` or ``(None, why it cannot be used)``, never an exception: OpenCV
    raises on absurd headers (a 50000×50000 PNG is over its pixel limit) and returns None on
    junk. The one decoder every reader uses, so each bad file is one problem row, not a crash."""
    try:
        img = cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_4 if reduced else cv2.IMREAD_COLOR)
    except cv2.error as exc:
        what = "too large to decode" if "pixel" in str(exc).lower() or "size" in str(exc).lower() else "undecodable"
        return None, f"image {what} (OpenCV refused its header)"
    if img is None:
        return None, "cannot read image (missing, truncated or not an image)"
    if min(img.shape[:2]) * (4 if reduced else 1) < MIN_SIDE:
        return None, f"image too small ({img.shape[1]}×{img.shape[0]} px; at least {MIN_SIDE} px a side)"
    return img, ""


def read_rgb(path: str, size: int) -> np.ndarray:
    """Read one image as RGB uint8 ``size``×``size``; raise EdgedistalError naming the file."""
    img, why = image_problem(path)
    if img is None:
        raise EdgedistalError(
            f"{path}: {why}",
            "remove it from the manifest or re-run `edgedistal ingest --verify` to refresh the file list",
        )
    if img.shape[0] != size or img.shape[1] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_batch(paths: Sequence[str], size: int, workers: int | None = None) -> np.ndarray:
    """Decode ``paths`` with a thread pool (OpenCV releases the GIL) into ``[N,size,size,3]``."""
    out = np.empty((len(paths), size, size, 3), np.uint8)
    workers = workers or min(8, (os.cpu_count() or 2) * 2)

    def work(i: int) -> None:
        out[i] = read_rgb(paths[i], size)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(len(paths))))
    return out


def cache_key(paths: Sequence[str], size: int) -> str:
    h = hashlib.sha1(f"v1|{size}|".encode())
    for p in paths:
        h.update(p.encode())
        try:
            st = os.stat(p)
            h.update(f"|{st.st_size}|{int(st.st_mtime)}".encode())
        except OSError:
            h.update(b"|missing")
    return h.hexdigest()[:20]


def load_images(
    paths: Sequence[str],
    size: int,
    cache: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Return ``[N,size,size,3]`` uint8 RGB for ``paths``, memory-mapped from the cache if built.

    The cache is keyed by the paths, their sizes and mtimes and the target size, so editing a
    file or the manifest rebuilds it; it is written atomically.
    """
    paths = [str(p) for p in paths]
    if not cache:
        return decode_batch(paths, size, workers)
    target = cache_dir() / "images" / f"{cache_key(paths, size)}.npy"
    if target.exists():
        return np.load(target, mmap_mode="r")
    chunk = 1024
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)  # full-size leftovers of builds that were killed
    with atomic_path(target) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        starts = range(0, len(paths), chunk)
        if progress:
            from edgedistal.utils.progress import track

            starts = track(starts, total=len(starts), description=f"decoding {len(paths)} images")
        for s in starts:
            arr[s : s + chunk] = decode_batch(paths[s : s + chunk], size, workers)
        arr.flush()
        del arr
    return np.load(target, mmap_mode="r")
