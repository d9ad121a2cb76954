"""Unpack dataset tarballs once into a cache folder (idempotent, safe to interrupt)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from edgedistal.data.images import cache_dir
from edgedistal.errors import EdgedistalError


def extract_tar(tar_path: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Extract ``tar_path`` under ``dest`` (default: the cache) and return the extraction folder.

    A ``.complete`` stamp marks a finished extraction; an interrupted one is redone from scratch.
    """
    tar_path = Path(tar_path)
    if not tar_path.exists():
        raise EdgedistalError(f"{tar_path}: archive not found", "check the path to the dataset tarball")
    st = tar_path.stat()
    root = Path(dest) if dest else cache_dir() / "datasets"
    out = root / f"{tar_path.name.split('.')[0]}-{st.st_size}"
    stamp = out / ".complete"
    if stamp.exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with tarfile.open(tar_path) as tf:
        tf.extractall(tmp, filter="data")
    tmp.rename(out)
    stamp.write_text(str(tar_path))
    return out


def shared_datasets_dir() -> Path | None:
    """The team's read-only real-data folder: ``$EDGEDISTAL_SHARED`` or ``../shared/datasets``."""
    env = os.environ.get("EDGEDISTAL_SHARED")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p.parent / "shared" / "datasets" for p in here.parents]
    candidates.append(Path.cwd().parent / "shared" / "datasets")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.tar")):
            return c
    return None


def shared_dataset(name: str) -> Path | None:
    """Extract ``<shared>/<name>.tar`` and return the folder *inside* it named ``name``, or None."""
    base = shared_datasets_dir()
    if base is None or not (base / f"{name}.tar").exists():
        return None
    out = extract_tar(base / f"{name}.tar")
    inner = out / name
    return inner if inner.exists() else out
