"""Pack a face-crop dataset into ONE small file that travels to a machine without ../shared.

The GPU machine sees only the working tree plus ≤ 64 MiB of carried files, so the DFDC dev
crops travel as WebP bytes re-encoded at a small size (128 px WebP q85 ≈ 1.5 kB a crop, all
23,578 crops ≈ 33 MiB), concatenated, with an offsets array and the manifest columns, in one
uncompressed ``.npz`` (WebP is already compressed; ``np.load`` reads it without pickle).
:func:`load_pack` decodes with a thread pool (OpenCV releases the GIL; Pillow is the fallback).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from edgedistal.data.manifest import COLUMNS, Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import atomic_path

PACK_VERSION = 1
#: Manifest columns stored in a pack (all of :data:`COLUMNS`; paths become ``pack://<video>``).
PACK_COLUMNS = tuple(COLUMNS)


def _encode(path: str, size: int, quality: int, fmt: str) -> bytes:
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise EdgedistalError(f"{path}: cannot read image", "remove it from the manifest")
    if img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    flag = cv2.IMWRITE_WEBP_QUALITY if fmt == "webp" else cv2.IMWRITE_JPEG_QUALITY
    ok, buf = cv2.imencode(f".{fmt}", img, [flag, int(quality)])
    if not ok:
        raise EdgedistalError(f"{path}: cannot encode as {fmt}", "try --format jpg")
    return buf.tobytes()


def write_pack(
    manifest: Manifest,
    out: str | os.PathLike[str],
    *,
    size: int = 128,
    quality: int = 85,
    fmt: str = "webp",
    workers: int | None = None,
    meta: dict | None = None,
) -> dict:
    """Encode every row of ``manifest`` at ``size`` px and write one ``.npz``; return its stats.

    Rows keep their order and manifest columns (split included, so every machine evaluates on
    the same held-out groups).
    """
    if fmt not in {"webp", "jpg"}:
        raise EdgedistalError(f"unknown pack format {fmt!r}", "use webp or jpg")
    paths = manifest.paths
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        blobs = list(pool.map(lambda p: _encode(p, size, quality, fmt), paths))
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    df = manifest.df.copy()
    df["path"] = "pack://" + df["video"].astype(str) + "/" + df["sample_id"].astype(str)
    info = {
        "version": PACK_VERSION,
        "size": size,
        "quality": quality,
        "format": fmt,
        "count": len(df),
        "bytes": int(data.nbytes),
        **(meta or {}),
    }
    # UTF-8 bytes ("S" arrays): a quarter of numpy's UCS-4 strings, still loadable without pickle
    cols = {f"col_{c}": np.char.encode(df[c].astype(str).to_numpy(dtype=str), "utf-8") for c in PACK_COLUMNS}
    cols["col_label"] = df["label"].to_numpy(np.int8)
    cols["col_frame"] = df["frame"].to_numpy(np.int32)
    out = Path(out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, data=data, offsets=offsets, info=np.array(json.dumps(info)), **cols)
    info["file_bytes"] = out.stat().st_size
    return info


def read_pack_info(path: str | os.PathLike[str]) -> dict:
    with np.load(_check(path), allow_pickle=False) as z:
        return json.loads(str(z["info"]))


def _check(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise EdgedistalError(
            f"{path}: pack not found",
            "build it with `python scripts/pack_dfdc.py --out .gpu/dfdc_pack.npz`",
        )
    return path


def _text(arr: np.ndarray) -> np.ndarray:
    return np.char.decode(arr, "utf-8") if arr.dtype.kind == "S" else arr


def _decoder():
    """Return ``bytes-array → RGB uint8`` using OpenCV if importable, else Pillow."""
    try:
        import cv2

        def dec(buf: np.ndarray) -> np.ndarray:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    except ImportError:  # pragma: no cover - the GPU image may lack OpenCV
        import io

        from PIL import Image

        def dec(buf: np.ndarray) -> np.ndarray:
            return np.asarray(Image.open(io.BytesIO(buf.tobytes())).convert("RGB"))

    return dec


def load_pack(
    path: str | os.PathLike[str], *, workers: int | None = None
) -> tuple[Manifest, np.ndarray]:
    """Return ``(manifest, images uint8 [N,S,S,3] RGB)`` from a pack written by :func:`write_pack`."""
    path = _check(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            data = z["data"]
            offsets = z["offsets"]
            cols = {c: _text(z[f"col_{c}"]) for c in PACK_COLUMNS}
    except (OSError, KeyError, ValueError) as exc:
        raise EdgedistalError(
            f"{path}: not a readable edgedistal pack ({exc.__class__.__name__}: {exc})",
            "rebuild it with scripts/pack_dfdc.py",
        ) from exc
    size, n = int(info["size"]), len(offsets) - 1
    images = np.empty((n, size, size, 3), np.uint8)
    dec = _decoder()

    def work(i: int) -> None:
        images[i] = dec(data[offsets[i] : offsets[i + 1]])

    workers = workers or min(16, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(n)))
    manifest = Manifest(pd.DataFrame(cols))
    return manifest, images


def unpack_pack(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Manifest:
    """Write each packed crop as ``dest/<sample_id>.<fmt>`` (bytes as stored, no re-encode).

    Returns the manifest with absolute paths, so every library path that reads files
    (:func:`edgedistal.data.images.load_images`, distillation, evaluation) works unchanged on a
    machine that only has the pack. Files already present are kept (idempotent).
    """
    path = _check(path)
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        data, offsets = z["data"], z["offsets"]
        cols = {c: _text(z[f"col_{c}"]) for c in PACK_COLUMNS}
    ext = "jpg" if info.get("format") == "jpg" else "webp"
    files = [str(dest / f"{sid}.{ext}") for sid in cols["sample_id"]]

    def work(i: int) -> None:
        if not os.path.exists(files[i]):
            with atomic_path(files[i]) as tmp:
                tmp.write_bytes(data[offsets[i] : offsets[i + 1]].tobytes())

    with ThreadPoolExecutor(min(16, (os.cpu_count() or 2) * 2)) as pool:
        list(pool.map(work, range(len(files))))
    cols["path"] = np.asarray(files)
    return Manifest(pd.DataFrame(cols))
