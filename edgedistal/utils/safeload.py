"""Loading ``.pt`` files without running their code: tensors and plain types only.

A full (non-weights-only) ``torch.load`` unpickles arbitrary objects, and an object's ``__reduce__``
runs any function it names: a detector or training state from someone else could run code on
load. Every edgedistal ``.pt`` therefore holds only tensors and plain types (dict, list, tuple,
str, int, float, bool, None) — :func:`plain` makes a payload so before saving — and every load
goes through :func:`load_pt` (``weights_only=True``). The rule is generic: any checkpoint kind
(detector, embedder, training state) is ``{"config": <plain dict>, "state_dict": ..., ...}``.

A file that needs more (older edgedistal checkpoints stored numpy scalars) is refused with the
one command that converts it: ``edgedistal convert-checkpoint OLD -o NEW --trust``
(:func:`convert_trusted`, which allows those numpy types and nothing else).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from edgedistal.errors import EdgedistalError

CONVERT = "edgedistal convert-checkpoint {path} -o {new} --trust"


def plain(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, paths and dataclasses turned into plain types (tensors kept)."""
    import numpy as np
    import torch

    if isinstance(obj, np.generic):  # first: np.float64 is a float, np.str_ a str (not plain to torch)
        return obj.item()
    if obj is None or isinstance(obj, bool | int | str | float | torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        seq = [plain(v) for v in obj]
        return tuple(seq) if isinstance(obj, tuple) else seq
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return plain(asdict(obj))
    if isinstance(obj, torch.dtype | torch.device):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint (plain types and tensors only)")


def load_pt(path: str | os.PathLike[str], what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; anything else becomes a one-line error."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgedistalError(f"{path}: {what} not found", "check the path")
    if not _looks_like_torch(path):  # a text or image file: say so, not "holds Python objects"
        raise EdgedistalError(f"{path}: not a PyTorch file (neither a torch zip archive nor a pickle)",
                              f"pass the {what} .pt that edgedistal wrote")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EdgedistalError(
            f"{path}: {what} holds Python objects, not only tensors and plain values; not loaded "
            "(unpickling them could run code)",
            f"only if you trust where it came from, convert it once: {CONVERT.format(path=path, new='NEW.pt')}",
        ) from exc
    except Exception as exc:  # truncated zip, not a torch file, wrong magic, ...
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise EdgedistalError(f"{path}: cannot read {what} ({exc.__class__.__name__}: {first})",
                              "the file is damaged or not a PyTorch file; restore or re-create it") from exc


def _looks_like_torch(path: Path) -> bool:
    """A torch.save file starts as a zip archive (``PK``) or, in the legacy format, a pickle (0x80)."""
    with path.open("rb") as fh:
        head = fh.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def require_dict(payload: Any, path: str | os.PathLike[str], keys: tuple[str, ...], what: str) -> dict:
    """``payload`` if it is a dict with ``keys``; else a one-line error naming what is missing."""
    if not isinstance(payload, dict):
        raise EdgedistalError(f"{path}: not an edgedistal {what} (holds a {type(payload).__name__}, not a dict)",
                              "pass a file written by edgedistal")
    missing = [k for k in keys if k not in payload]
    if missing:
        raise EdgedistalError(f"{path}: not an edgedistal {what} (no {', '.join(missing)} entry)",
                              "pass a file written by edgedistal")
    return payload


#: What old edgedistal checkpoints held besides tensors and plain types: numpy scalars and
#: arrays. Conversion reads exactly these through torch's allow-list; nothing else is unpickled.
CONVERTIBLE_GLOBALS = ("numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct",
                       "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
                       "numpy.core.multiarray.scalar")


def _allowed_global(name: str) -> object:
    import importlib

    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def convert_trusted(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> Path:
    """Read ``old`` with ``weights_only=True`` plus an allow-list of the numpy types older
    checkpoints held (:data:`CONVERTIBLE_GLOBALS`), store it as plain types in ``new`` and prove
    ``new`` loads with ``weights_only=True``. A file needing any other global is refused, so no
    code from the file can run even when the caller vouched for it."""
    import torch

    from edgedistal.utils.io import atomic_path

    old, new = Path(old), Path(new)
    if not old.is_file():
        raise EdgedistalError(f"{old}: not found", "pass the checkpoint to convert")
    if new.exists() and new.resolve() == old.resolve():
        raise EdgedistalError(f"{new}: is the input; converting in place would lose the original",
                              "pass another NEW path")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(old)
    except Exception as exc:
        raise EdgedistalError(f"{old}: cannot read it ({exc.__class__.__name__}: {str(exc)[:160]})",
                              "the file is damaged or not a PyTorch file") from exc
    foreign = [g for g in needed if g not in CONVERTIBLE_GLOBALS]
    if foreign:
        raise EdgedistalError(f"{old}: holds objects edgedistal never writes ({', '.join(foreign[:5])})",
                              "only checkpoints written by edgedistal can be converted; nothing was unpickled")
    try:
        import numpy as np

        # dtype objects rebuild through their class (numpy.dtypes.Float64DType, …): plain data types
        dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
        with torch.serialization.safe_globals([*(_allowed_global(g) for g in needed), *dtypes]):
            payload = torch.load(old, map_location="cpu", weights_only=True)
        data = plain(payload)
    except TypeError as exc:
        raise EdgedistalError(f"{old}: {exc}", "this file holds objects edgedistal never writes") from exc
    except Exception as exc:
        raise EdgedistalError(f"{old}: cannot read it ({exc.__class__.__name__}: {str(exc)[:160]})",
                              "the file is damaged or not a PyTorch file") from exc
    with atomic_path(new) as tmp:
        torch.save(data, tmp)
    load_pt(new)
    return new


__all__ = ["plain", "load_pt", "require_dict", "convert_trusted", "CONVERT"]
