"""Training dynamics of the labelled pool from one cheap proxy training (Selection via Proxy).

Why: when the dataset is labelled (DFDC, FF++), a small backbone trained briefly at low
resolution over the *whole* pool ranks every sample's difficulty nearly as well as the target
model, at a fraction of its cost (Coleman et al., ICLR 2020). The pool is scored at several
checkpoints of that one run; from the logit history come, per sample:

* ``el2n``: ‖p − onehot(y)‖₂ averaged over the early checkpoints (Paul et al. 2021);
* ``forgetting``: correct → incorrect transitions between checkpoints (Toneva et al. 2019);
  never-learned samples get the number of checkpoints, more than any learned sample can have;
* ``aum``: mean margin, ``z`` for a fake and ``−z`` for a real, one fake logit ``z`` (Pleiss et al.);
* ``confidence`` / ``variability``: mean and std of p(y | x) (dataset cartography).

Optionally ``folds > 0`` adds out-of-fold probabilities (``oof_prob``, ``oof_el2n``) from
proxies trained on the other folds, with folds made of whole groups so a video's near-duplicate
frames never sit on both sides. The cost (seconds, images seen) is recorded with the scores.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from edgedistal.utils.io import atomic_path, read_json, write_json_atomic

log = logging.getLogger(__name__)

@dataclass
class DynamicsConfig:
    """The proxy run: small, short and low-resolution on purpose (it only has to rank)."""

    backbone: str = "resnet10t"
    epochs: float = 2.0
    steps: int | None = None  # overrides epochs
    checkpoints: int = 6  # pool scorings, evenly spaced over the run (the last at its end)
    early: float = 0.5  # EL2N averages the checkpoints within this first share of the run
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    augment: str = "light"
    folds: int = 0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    num_threads: int | None = None
    predict_batch: int = 512


@dataclass
class Dynamics:
    """Per-sample scores (``table``, keyed by ``sample_id``), the final proxy's embeddings and
    the logit history ``[T, N]`` they came from, plus what computing them cost."""

    table: pd.DataFrame
    embeddings: np.ndarray
    logits: np.ndarray
    cost: dict = field(default_factory=dict)

    def scores(self) -> dict[str, np.ndarray]:
        """Pool-aligned score arrays for :class:`SelectionState.scores`."""
        return {c: self.table[c].to_numpy() for c in self.table.columns if c not in ("sample_id", "label")}

    def save(self, folder: str | Path) -> None:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "dynamics.parquet") as tmp:
            self.table.to_parquet(tmp, index=False)
        for name, arr in (("dynamics_embeddings.npy", self.embeddings), ("dynamics_logits.npy", self.logits)):
            with atomic_path(out / name) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, np.asarray(arr, np.float32))
        write_json_atomic(out / "dynamics.json", self.cost)  # last: its presence marks a complete set

    @classmethod
    def load(cls, folder: str | Path) -> Dynamics | None:
        p = Path(folder)
        if not (p / "dynamics.json").exists():
            return None
        return cls(pd.read_parquet(p / "dynamics.parquet"), np.load(p / "dynamics_embeddings.npy"),
                   np.load(p / "dynamics_logits.npy"), read_json(p / "dynamics.json"))


def scores_from_logits(logits: np.ndarray, labels: np.ndarray, early: float = 0.5) -> dict[str, np.ndarray]:
    """The dynamics scores of a logit history ``[T, N]`` (checkpoints in training order)."""
    z = np.asarray(logits, np.float64)
    if z.ndim != 2:
        raise ValueError(f"logit history must be [T, N], got shape {z.shape}")
    y = np.asarray(labels, np.int64)
    t = z.shape[0]
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    p_y = np.where(y == 1, p, 1.0 - p)
    n_early = max(1, int(math.ceil(early * t)))
    correct = (z >= 0) == (y == 1)
    forgot = (correct[:-1] & ~correct[1:]).sum(0) if t > 1 else np.zeros(z.shape[1], np.int64)
    never = ~correct.any(0)
    return {
        "el2n": (math.sqrt(2.0) * np.abs(p[:n_early] - y)).mean(0),  # ‖[1−p, p] − onehot(y)‖₂
        "forgetting": np.where(never, t, forgot).astype(np.int64),
        "never_learned": never,
        "aum": np.where(y == 1, z, -z).mean(0),
        "confidence": p_y.mean(0),
        "variability": p_y.std(0),
        "correctness": correct.mean(0),
    }


def _train_cfg(cfg: DynamicsConfig, image_size: int, seed: int):
    """The detector recipe of the proxy run: no validation, no early stopping, inputs as they are
    (channels_last off: the dynamics' logits stay the same whatever the CPU's bf16 support)."""
    from edgedistal.models.train import TrainConfig

    return TrainConfig(backbone=cfg.backbone, image_size=image_size, batch_size=cfg.batch_size, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, max_steps=cfg.steps or None, epochs=cfg.epochs, patience=0,
                       augment=cfg.augment, amp=cfg.amp, seed=seed, device=cfg.device,
                       num_threads=cfg.num_threads, channels_last=False)


@torch.inference_mode()
def _score(model, images: np.ndarray, device: torch.device, amp: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Fake logits ``[N]`` (not probabilities: AUM needs unsaturated margins) and embeddings."""
    from edgedistal.models.predict import _batches, autocast

    was_training = model.training
    model.eval()
    mean = torch.tensor(model.config.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std, device=device).view(1, 3, 1, 1)
    logits = np.empty(len(images), np.float32)
    embs = np.empty((len(images), model.embed_dim), np.float32)
    pos = 0
    for xb in _batches(images, batch, device):
        x = (xb.permute(0, 3, 1, 2).float().div_(255.0) - mean) / std
        with autocast(device, amp):
            z, e = model(x)
        logits[pos : pos + len(x)] = z.float().cpu().numpy()
        embs[pos : pos + len(x)] = e.float().cpu().numpy()
        pos += len(x)
    model.train(was_training)
    return logits, embs


def train_recording(
    images: np.ndarray, labels: np.ndarray, cfg: DynamicsConfig, *, score_images: np.ndarray | None = None,
    checkpoints: int | None = None, seed: int | None = None, name: str = "proxy",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train the proxy on ``images`` and score ``score_images`` (default: the same) at
    ``checkpoints`` evenly spaced steps. Returns (logits ``[T, M]``, final embeddings, cost).

    The loop is the detector's own (:func:`edgedistal.models.train.fit`, with a per-step hook),
    without validation or early stopping: the proxy must see the whole run for its dynamics to
    mean the same for every sample.
    """
    from edgedistal.models.predict import resolve_device
    from edgedistal.models.train import fit

    t0 = time.perf_counter()
    seed = cfg.seed if seed is None else seed
    tcfg = _train_cfg(cfg, images.shape[1], seed)
    n = len(images)
    bs = min(cfg.batch_size, n)
    total = int(cfg.steps) if cfg.steps else max(1, int(round(cfg.epochs * max(1, n // bs))))
    n_ck = max(1, checkpoints if checkpoints is not None else cfg.checkpoints)
    at = sorted({max(1, int(round(total * (j + 1) / n_ck))) for j in range(n_ck)})
    score_x = images if score_images is None else score_images
    log.info("%s: training %s on %d images for %d steps, scoring %d images at %d checkpoints",
             name, cfg.backbone, n, total, len(score_x), len(at))
    device = resolve_device(cfg.device)
    history: list[np.ndarray] = []
    emb = np.empty((0, 0), np.float32)
    score_s = 0.0

    def record(step: int, model) -> None:
        nonlocal emb, score_s
        if step not in at:
            return
        t_s = time.perf_counter()
        z, emb = _score(model, score_x, device, cfg.amp, cfg.predict_batch)
        history.append(z)
        score_s += time.perf_counter() - t_s
        log.info("%s: checkpoint %d/%d at step %d/%d (%.0f s scoring)", name, len(history), len(at), step, total,
                 score_s)

    result = fit(images, labels, cfg=tcfg, progress=False, on_step=record)
    wall = time.perf_counter() - t0
    cost = {"train_s": round(wall - score_s, 3), "score_s": round(score_s, 3), "wall_s": round(wall, 3),
            "steps": total, "images_trained": int(result.samples_seen),
            "images_scored": len(score_x) * len(history), "checkpoints_at_step": at, "device": str(device)}
    return np.stack(history), emb, cost


def group_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per row, whole groups per fold (a shuffled round-robin over the groups)."""
    codes, uniq = pd.factorize(pd.Series(groups), sort=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), np.int64)
    fold_of_group[order] = np.arange(len(uniq)) % folds
    return fold_of_group[codes]


def compute_dynamics(
    images: np.ndarray, labels: np.ndarray, sample_ids: np.ndarray, cfg: DynamicsConfig,
    groups: np.ndarray | None = None,
) -> Dynamics:
    """One proxy run over the whole labelled pool (+ ``cfg.folds`` out-of-fold runs)."""
    labels = np.asarray(labels, np.int64)
    logits, emb, cost = train_recording(images, labels, cfg)
    table = pd.DataFrame({"sample_id": np.asarray(sample_ids), "label": labels,
                          **scores_from_logits(logits, labels, cfg.early)})
    table["prob"] = (1.0 / (1.0 + np.exp(-logits[-1].astype(np.float64)))).astype(np.float32)
    if cfg.folds and cfg.folds > 1:
        fold = group_folds(groups if groups is not None else np.arange(len(labels)), cfg.folds, cfg.seed)
        oof = np.full(len(labels), np.nan)
        fold_cost = []
        for f in range(cfg.folds):
            held = fold == f
            if held.all() or not held.any():
                continue
            z, _, c = train_recording(images[~held], labels[~held], cfg, score_images=images[held],
                                      checkpoints=1, seed=cfg.seed + 1 + f, name=f"fold {f + 1}/{cfg.folds}")
            oof[held] = 1.0 / (1.0 + np.exp(-z[-1].astype(np.float64)))
            fold_cost.append(c)
        table["oof_prob"] = oof.astype(np.float32)
        table["oof_el2n"] = (math.sqrt(2.0) * np.abs(oof - labels)).astype(np.float32)
        for key in ("train_s", "score_s", "wall_s", "images_trained", "images_scored"):
            cost[key] = round(cost[key] + sum(c[key] for c in fold_cost), 3)
        cost["folds"] = cfg.folds
    cost["config"] = asdict(cfg)
    cost["pool"] = len(labels)
    return Dynamics(table, emb, logits, cost)
