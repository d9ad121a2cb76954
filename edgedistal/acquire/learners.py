"""The model the acquisition loop consults each round: probabilities + embeddings of the pool.

* :class:`HeadLearner`: a logistic head on fixed embeddings. Cheap (seconds on 1M × 512);
  the unit the proxy loop iterates, and a light learner for tests.
* :class:`ProxyLearner` (default): train the detector once on the seed set, embed and score
  the pool once, then refit only the head each round; refresh the backbone every R rounds.
* :class:`FullLearner` (paper-faithful): retrain the detector every round and re-score.

All three return :class:`Scores` and only ever read ``labels[labelled]`` (the oracle's answers).
Backbone fits are cached under ``workdir`` keyed by the round they were made in, so a resumed
loop reloads exactly the weights an uninterrupted run would have used.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from edgedistal.utils.io import atomic_path


@dataclass
class Scores:
    """One scoring of the pool (and of the validation split, when there is one)."""

    probs: np.ndarray  # [N] fake probability
    embeddings: np.ndarray  # [N, D] float32
    mc_probs: np.ndarray | None = None  # [T, N]
    val_probs: np.ndarray | None = None  # [V]


class Learner(Protocol):
    mode: str

    def seed_embeddings(self) -> np.ndarray:
        """Label-free pool features for choosing the seed set (k-center seeding)."""
        ...

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        """Fit on ``labelled`` (bool [N]) and score the whole pool."""
        ...

    def describe(self) -> dict: ...


def thumbnails(images: np.ndarray, side: int = 8, chunk: int = 4096) -> np.ndarray:
    """Mean-pooled ``side``×``side`` RGB thumbnails, centred and L2-normalised: label-free
    features good enough to spread a seed set over identities/backgrounds before any training."""
    n, s = images.shape[0], images.shape[1]
    f = max(1, s // side)
    s2 = f * side
    out = np.empty((n, side * side * 3), np.float32)
    for a in range(0, n, chunk):
        x = np.asarray(images[a : a + chunk, :s2, :s2], np.float32) / 255.0
        x = x.reshape(len(x), side, f, side, f, 3).mean(axis=(2, 4))
        out[a : a + chunk] = x.reshape(len(x), -1)
    out -= out.mean(0, keepdims=True)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-8
    return out


def score_with(detector: Any, images: np.ndarray, *, device: str = "auto", batch_size: int = 256,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities + embeddings of ``images`` through the torch serving backend and the batch
    scorer: the path `edgedistal score --backend torch` takes, so a pool scored here and one scored
    by the command agree (one scoring function, see :func:`edgedistal.acquire.scorer.score_images`)."""
    from edgedistal.acquire.scorer import score_images
    from edgedistal.runtime.torch_backend import TorchBackend

    with TorchBackend(detector, "fp32", device=device, batch_size=batch_size) as backend:
        return score_images(images, backend, batch_size=batch_size, progress=progress)


def _auc(y: np.ndarray | None, p: np.ndarray | None) -> float:
    if y is None or p is None or len(y) == 0 or len(np.unique(y)) < 2:
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


class HeadLearner:
    """Logistic regression (sklearn, class-balanced) on fixed pool embeddings.

    ``fallback_probs`` is returned while the labelled set holds a single class.
    ``mc_dropout = T`` draws T feature-dropout passes of the head for BALD.
    """

    mode = "head"

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        val_embeddings: np.ndarray | None = None,
        val_labels: np.ndarray | None = None,
        *,
        c: float = 1.0,
        mc_dropout: int = 0,
        mc_rate: float = 0.2,
        fallback_probs: np.ndarray | None = None,
        fallback_val: np.ndarray | None = None,
        seed_features: np.ndarray | None = None,
    ):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.val_embeddings = val_embeddings
        self.val_labels = val_labels
        self.c = c
        self.mc_dropout = mc_dropout
        self.mc_rate = mc_rate
        self.fallback_probs = fallback_probs
        self.fallback_val = fallback_val
        self._seed_features = seed_features

    def seed_embeddings(self) -> np.ndarray:
        return self.embeddings if self._seed_features is None else self._seed_features

    def _fit_head(self, labelled: np.ndarray, seed: int):
        from sklearn.linear_model import LogisticRegression

        y = self.labels[labelled]
        if len(np.unique(y)) < 2:
            return None
        head = LogisticRegression(C=self.c, class_weight="balanced", max_iter=500, random_state=seed % (2**32))
        head.fit(self.embeddings[labelled], y)
        return head

    @staticmethod
    def _logits(emb: np.ndarray, w: np.ndarray, b: float, chunk: int = 262144) -> np.ndarray:
        out = np.empty(len(emb), np.float32)
        for a in range(0, len(emb), chunk):
            out[a : a + chunk] = emb[a : a + chunk] @ w + b
        return out

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        labelled = np.asarray(labelled, bool)
        head = self._fit_head(labelled, seed)
        n = len(self.embeddings)
        if head is None:
            prior = float(self.labels[labelled].mean()) if labelled.any() else 0.5
            probs = self.fallback_probs if self.fallback_probs is not None else np.full(n, prior, np.float32)
            val = self.fallback_val
            if val is None and self.val_embeddings is not None:
                val = np.full(len(self.val_embeddings), prior, np.float32)
            return Scores(np.asarray(probs, np.float32), self.embeddings, None, val)
        w = head.coef_[0].astype(np.float32)
        b = float(head.intercept_[0])
        probs = _sigmoid(self._logits(self.embeddings, w, b))
        val = None
        if self.val_embeddings is not None and len(self.val_embeddings):
            val = _sigmoid(self._logits(np.asarray(self.val_embeddings, np.float32), w, b))
        mc = None
        if self.mc_dropout:
            g = torch.Generator().manual_seed(seed)
            mc = np.empty((self.mc_dropout, n), np.float32)
            keep = 1.0 - self.mc_rate
            for t in range(self.mc_dropout):
                mask = (torch.rand(len(w), generator=g) < keep).numpy().astype(np.float32) / keep
                mc[t] = _sigmoid(self._logits(self.embeddings, w * mask, b))
        return Scores(probs, self.embeddings, mc, val)

    def describe(self) -> dict:
        return {"mode": self.mode, "head": "logistic", "c": self.c, "mc_dropout": self.mc_dropout}


class FixedLearner:
    """Scores computed once elsewhere (`edgedistal score` output): every round sees the same
    probabilities and embeddings, so nothing is trained and the selection is as good as the
    model that scored the pool. ``update`` only reads ``labelled`` for its shape."""

    mode = "scores"

    def __init__(self, scores: Scores, *, source: str = "", digest: str = ""):
        self.scores, self.source, self.digest = scores, source, digest

    def seed_embeddings(self) -> np.ndarray:
        return self.scores.embeddings

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        return self.scores

    def describe(self) -> dict:
        return {"mode": self.mode, "scores": self.source, "digest": self.digest}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)


class _DetectorMixin:
    """Shared pieces of the learners that train the detector (edgedistal.models)."""

    images: np.ndarray
    labels: np.ndarray
    val_images: np.ndarray | None
    val_labels: np.ndarray | None
    workdir: Path
    progress: bool

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        val_images: np.ndarray | None,
        val_labels: np.ndarray | None,
        train_cfg,
        workdir: str | os.PathLike[str],
        *,
        mc_dropout: int = 0,
        predict_batch: int = 256,
        progress: bool = False,
    ):
        self.images, self.labels = images, np.asarray(labels, np.int64)
        self.val_images, self.val_labels = val_images, val_labels
        self.train_cfg = train_cfg
        self.workdir = Path(workdir)
        self.mc_dropout = mc_dropout
        self.predict_batch = predict_batch
        self.progress = progress

    def _train_cfg(self, seed: int):
        from dataclasses import replace

        return replace(self.train_cfg, seed=int(seed) % (2**31))

    def _fit_and_score(self, labelled: np.ndarray, tag: str, seed: int, mc_dropout: int) -> dict:
        """Train on ``labelled``, score pool + val; cached as ``workdir/<tag>.npz`` + ``.pt``."""
        cache = self.workdir / f"{tag}.npz"
        ckpt = self.workdir / f"{tag}.pt"
        if cache.exists():
            with np.load(cache) as z:
                return {k: z[k] for k in z.files}
        from edgedistal.models.predict import predict
        from edgedistal.models.train import fit

        idx = np.flatnonzero(labelled)
        has_val = self.val_images is not None and len(self.val_images) > 0
        res = fit(
            self.images[idx],
            self.labels[idx],
            self.val_images if has_val else None,
            self.val_labels if has_val else None,
            self._train_cfg(seed),
            checkpoint=ckpt,
            progress=self.progress,
        )
        dev = self.train_cfg.device
        probs, emb = score_with(res.model, self.images, device=dev, batch_size=self.predict_batch,
                                progress=self.progress)
        out = {"probs": probs, "embeddings": emb}
        if mc_dropout:  # stochastic passes: no serving backend keeps dropout on, so torch's own loop
            mc, _ = predict(res.model, self.images, batch_size=self.predict_batch, device=dev, mc_dropout=mc_dropout)
            out["mc_probs"] = mc
        if has_val:
            vp, ve = score_with(res.model, self.val_images, device=dev, batch_size=self.predict_batch,
                                progress=False)
            out["val_probs"], out["val_embeddings"] = vp, ve
        self.workdir.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **out)
        self.last_checkpoint = str(ckpt)
        return out

    def _prune(self, keep: str) -> None:
        """Keep only the newest cached scoring: 1M × 512 embeddings are 2 GB each."""
        for p in self.workdir.glob("*.npz"):
            if p.stem != keep:
                p.unlink(missing_ok=True)

    def seed_embeddings(self) -> np.ndarray:
        return thumbnails(self.images)


class ProxyLearner(_DetectorMixin):
    """Detector fitted on round-1's labels (refreshed every ``refresh_every`` rounds), pool
    embedded once per fit; a :class:`HeadLearner` on those embeddings each round."""

    mode = "proxy"

    def __init__(self, *args: Any, refresh_every: int = 0, head_c: float = 1.0, **kw: Any):
        """``_DetectorMixin``'s arguments, plus the backbone refresh period and the head's C."""
        super().__init__(*args, **kw)
        self.refresh_every = refresh_every
        self.head_c = head_c
        self.last_checkpoint: str | None = None
        self._tag: str | None = None
        self._head: HeadLearner | None = None

    def fit_round(self, round_idx: int) -> int:
        """The round whose labels the backbone used at ``round_idx`` (1, 1+R, 1+2R, …)."""
        if self.refresh_every <= 0 or round_idx <= 1:
            return 1
        return 1 + ((round_idx - 1) // self.refresh_every) * self.refresh_every

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        fr = self.fit_round(round_idx)
        tag = f"backbone_r{fr:03d}"
        if tag != self._tag:
            if fr != round_idx and not (self.workdir / f"{tag}.npz").exists():
                from edgedistal.errors import EdgedistalError

                raise EdgedistalError(
                    f"{self.workdir / tag}.npz: the backbone of round {fr} is missing, so the "
                    "resumed run cannot reuse the weights the interrupted one used",
                    "run again without --resume to start over",
                )
            out = self._fit_and_score(labelled, tag, seed, 0)
            self.last_checkpoint = str(self.workdir / f"{tag}.pt")
            self._prune(tag)
            self._tag = tag
            self._head = HeadLearner(
                out["embeddings"],
                self.labels,
                out.get("val_embeddings"),
                self.val_labels,
                c=self.head_c,
                mc_dropout=self.mc_dropout,
                fallback_probs=out["probs"],
                fallback_val=out.get("val_probs"),
            )
        assert self._head is not None
        return self._head.update(labelled, round_idx, seed)

    def describe(self) -> dict:
        return {
            "mode": self.mode,
            "refresh_every": self.refresh_every,
            "mc_dropout": self.mc_dropout,
            "head": "logistic",
            "train": asdict(self.train_cfg),
            "checkpoint": self.last_checkpoint,
        }


class FullLearner(_DetectorMixin):
    """Retrain the detector from scratch on the labelled set every round (DeepDistAL)."""

    mode = "full"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_checkpoint: str | None = None

    def update(self, labelled: np.ndarray, round_idx: int, seed: int) -> Scores:
        tag = f"detector_r{round_idx:03d}"
        out = self._fit_and_score(labelled, tag, seed, self.mc_dropout)
        self.last_checkpoint = str(self.workdir / f"{tag}.pt")
        self._prune(tag)
        for p in self.workdir.glob("detector_r*.pt"):  # keep the newest checkpoint only
            if p.stem != tag:
                p.unlink(missing_ok=True)
        return Scores(out["probs"], out["embeddings"], out.get("mc_probs"), out.get("val_probs"))

    def describe(self) -> dict:
        return {
            "mode": self.mode,
            "mc_dropout": self.mc_dropout,
            "train": asdict(self.train_cfg),
            "checkpoint": self.last_checkpoint,
        }


def val_auc(scores: Scores, val_labels: np.ndarray | None) -> float:
    """Validation ROC AUC of a scoring (NaN without a two-class val split)."""
    return _auc(val_labels, scores.val_probs)
