"""The resume file of a detector training run: what the loop carries between steps, written at
every evaluation and read back (``weights_only=True``) only when it belongs to the same run.

Kept apart from the loop (:mod:`edgedistal.models.train`): the loop trains, this file decides
what an interrupted run may continue from and refuses anything else with one line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgedistal.errors import EdgedistalError
from edgedistal.models.registry import Detector

__all__ = ["LoopState", "load_training_state", "resume_fingerprint", "restore_rng", "rng_state", "save_training_state"]


@dataclass
class LoopState:
    """What the training loop carries between steps, and what a resume file restores."""

    perm: torch.Tensor
    step: int = 0
    cursor: int = 0
    history: list[dict] = field(default_factory=list)
    best_auc: float = -math.inf
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_val: dict = field(default_factory=dict)
    bad_evals: int = 0
    seen: int = 0


#: what a training-state file must hold (read with weights_only=True: tensors and plain types)
_STATE_KEYS = ("total", "n", "model", "optimizer", "gen", "torch_rng", "perm", "step", "cursor")
#: TrainConfig fields that do not change what is learned (where and how fast it runs)
_NOT_SETTINGS = ("device", "num_threads", "compile", "time_budget_s", "device_data_max_frac", "channels_last")


def resume_fingerprint(cfg: Any, train_x: np.ndarray, train_y: np.ndarray,
                       val_y: np.ndarray | None) -> tuple[str, dict[str, Any]]:
    """A digest of the settings and data a training state belongs to (``train --resume`` with
    other settings is refused, as ``distill --resume`` is). The images are sampled (at most 256,
    evenly), the labels hashed whole: cheap once per run."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_SETTINGS}
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(train_y).astype(np.int8).tobytes())
    if val_y is not None:
        h.update(np.ascontiguousarray(val_y).astype(np.int8).tobytes())
    for i in np.unique(np.linspace(0, len(train_x) - 1, min(256, len(train_x))).astype(np.int64)):
        h.update(np.ascontiguousarray(train_x[i]).tobytes())
    return h.hexdigest(), settings


def _settings_diff(old: Any, new: dict[str, Any] | None) -> str:
    if not isinstance(old, dict) or new is None:
        return "settings or data differ"
    diff = [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(diff[:3]) or "same options, other data"


def load_training_state(path: str | Path, model: Detector, opt: torch.optim.Optimizer, gen: torch.Generator,
                         device: torch.device, total: int, n: int, on_device: bool, fingerprint: str | None = None,
                         settings: dict[str, Any] | None = None) -> LoopState:
    """Weights, optimiser, sampler and RNG state of an interrupted run; refused if it was another
    run (other step count, data or settings). Read with ``weights_only=True``: a crafted file
    cannot run code, also not before the refusal."""
    from edgedistal.utils.safeload import load_pt, require_dict

    st = require_dict(load_pt(path, "training state"), path, _STATE_KEYS, "training state")
    if st.get("total") != total or st.get("n") != n:
        raise EdgedistalError(
            f"{path}: training state is for another run ({st.get('total')} steps on {st.get('n')} images)",
            "delete it to start over, or resume with the same data and step count",
        )
    if st.get("fingerprint") is not None and fingerprint is not None and st["fingerprint"] != fingerprint:
        raise EdgedistalError(
            f"{path}: training state was written with other settings ({_settings_diff(st.get('settings'), settings)})",
            "resume with the same options, or drop --resume (or delete it) to start over",
        )
    try:
        return _restore(st, model, opt, gen, device, on_device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise EdgedistalError(f"{path}: damaged training state ({exc.__class__.__name__}: {str(exc)[:160]})",
                              "delete it to start over") from exc


def rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The sampler's and torch's RNG states (and CUDA's on a GPU): what a resumed run needs to draw
    the same batches and augmentations as the run it continues (detector and embedder alike)."""
    return {"gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_rng(st: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    """Put back what :func:`rng_state` saved."""
    gen.set_state(st["gen"])
    torch.set_rng_state(st["torch_rng"])
    if device.type == "cuda" and st.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(st["cuda_rng"], device)


def _restore(st: dict[str, Any], model: Detector, opt: torch.optim.Optimizer, gen: torch.Generator, device: torch.device,
             on_device: bool) -> LoopState:
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    restore_rng(st, gen, device)
    return LoopState(perm=st["perm"].to(device) if on_device else st["perm"], step=st["step"], cursor=st["cursor"],
                      history=st["history"], best_auc=st["best_auc"], best_step=st["best_step"],
                      best_state=st["best_state"], best_val=st["best_val"], bad_evals=st["bad_evals"], seen=st["seen"])


def save_training_state(path: str | Path, run: LoopState, model: Detector, opt: torch.optim.Optimizer,
                         gen: torch.Generator, device: torch.device, total: int, n: int,
                         fingerprint: str | None = None, settings: dict[str, Any] | None = None) -> None:
    """Everything :func:`load_training_state` needs to continue exactly (written atomically)."""
    from edgedistal.utils.io import atomic_path
    from edgedistal.utils.safeload import plain

    payload = {
        "fingerprint": fingerprint, "settings": settings,
        "total": total, "n": n, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "step": run.step, "cursor": run.cursor, "perm": run.perm.cpu(), **rng_state(gen, device),
        "history": run.history, "best_auc": run.best_auc, "best_step": run.best_step, "best_state": run.best_state,
        "best_val": run.best_val, "bad_evals": run.bad_evals, "seen": run.seen,
    }
    with atomic_path(path) as tmp:
        torch.save(plain(payload), tmp)
