"""Training one evaluation cell under its protocol: the caps it tries, the run it keeps, its record.

The converged protocol trains an arm with a first step cap and, while a run hits its cap with val
AUC still rising, retrains it from the same seed with a larger cap (each cap ×``grow`` up to the
ceiling: the arm's *cap sequence*). Which cell earns a larger cap was, per cell, one noisy number
(the val rise over a run's last third); on DFDC dev at 5 % the arms kept at 200 steps averaged
0.612 test AUC and those escalated to 800 averaged 0.695, so the gate decided paired verdicts more
than the subsets did. :func:`group_level` therefore lets a *group* of paired cells (one budget and
seed) climb together: every arm trains every cap of the sequence up to the highest any of them
needed, and each keeps its best run on val.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgedistal.errors import EdgedistalError
from edgedistal.models.train import TrainConfig
from edgedistal.pipeline.baselines import carve_val
from edgedistal.pipeline.eval_config import Arm, EvalConfig

#: Test metrics kept per cell (frame and video level), as ``<level>_<name>``.
METRIC_NAMES = ("auc", "ap", "eer", "balanced_acc", "acc", "log_loss")
#: What a cell record says of its kept model: reused from the previous record while that run stays kept.
_MODEL_KEYS = ("steps", "epochs", "samples_seen", "wall_s", "images_per_s", "best_step", "best_val_auc",
               "stopped", "device", "precision", "test_s", "metrics", "reproduce_s", "reproduced_val_auc",
               "test_scores_sha", "holdout_val_auc", *(f"{lv}_{k}" for lv in ("frame", "video") for k in METRIC_NAMES))


def converged_steps(n_train: int, batch_size: int, cfg: EvalConfig, full: bool = False) -> int:
    """The converged protocol's first step cap: ``max_epochs`` passes (the full arm:
    ``full_max_epochs`` where set), within [min_steps, max_steps]."""
    passes = cfg.full_max_epochs if full and cfg.full_max_epochs else cfg.max_epochs
    steps = max(cfg.min_steps, math.ceil(passes * n_train / max(1, min(batch_size, n_train))))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def ceiling_steps(n_train: int, batch_size: int, cfg: EvalConfig) -> int:
    """The converged protocol's ceiling: ``ceiling_epochs`` passes (≥ the first cap, ≤ max_steps)."""
    steps = max(cfg.min_steps, math.ceil(cfg.ceiling_epochs * n_train / max(1, min(batch_size, n_train))))
    steps = max(steps, converged_steps(n_train, batch_size, cfg))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def next_cap(cap: int, ceiling: int, cfg: EvalConfig) -> int | None:
    """The cap of the next retraining of a still-improving arm, or None at the ceiling."""
    return None if cap >= ceiling else min(ceiling, math.ceil(cap * cfg.grow))


def cap_sequence(first: int, ceiling: int, cfg: EvalConfig) -> list[int]:
    """Every cap an arm may train with: ``first``, ×``grow`` each time, ending at the ceiling."""
    caps = [first]
    while (nxt := next_cap(caps[-1], max(first, ceiling), cfg)) is not None:
        caps.append(nxt)
    return caps


def top_attempt(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run with the largest cap (the later one on a tie): the protocol's reach so far."""
    return max(reversed(history), key=lambda h: int(h.get("step_cap") or 0))


def level_of(history: Sequence[Mapping[str, Any]], caps: Sequence[int]) -> int:
    """How far up its cap sequence an arm has trained (0: not at all)."""
    if not history:
        return 0
    reach = int(top_attempt(history).get("step_cap") or 0)
    return sum(c <= reach for c in caps)


def group_level(members: Sequence[tuple[Sequence[Mapping[str, Any]], Sequence[int]]], cfg: EvalConfig) -> int:
    """The cap level every arm of a group trains to: the highest any has reached (at least the
    first), one more while an arm at that level still rose at its cap below its ceiling.
    ``members``: each arm's (attempts, cap sequence)."""
    levels = [level_of(h, caps) for h, caps in members]
    top = max([1, *levels])
    if any(lv == top and len(caps) > top and improving(top_attempt(h), cfg)
           for (h, caps), lv in zip(members, levels, strict=True)):
        top += 1
    return top


def val_rise_last_third(history: Sequence[dict]) -> float:
    """How much val AUC rose over the last third of training (least-squares slope × span)."""
    pts = [(h["step"], h["val_auc"]) for h in history if math.isfinite(h.get("val_auc", math.nan))]
    if len(pts) < 3:
        return math.nan
    last = pts[-1][0]
    tail = [(s, v) for s, v in pts if s >= last * 2 / 3]
    if len(tail) < 2:
        tail = pts[-2:]
    s, v = np.array(tail, dtype=float).T
    if s[-1] == s[0]:
        return 0.0
    slope = np.polyfit(s, v, 1)[0]
    return float(slope * (s[-1] - s[0]))


def kept_attempt(history: Sequence[Mapping[str, Any]]) -> int:
    """The attempt whose model a cell keeps: the best val AUC (the later one on a tie).

    A retraining with a larger cap is a new run, not a continuation, and its early stop can land
    lower than the shorter run it replaces (on DFDC dev, 17 of 23 escalated cells did, by up to
    0.069 val AUC): keeping the last attempt would score an arm below what it reached."""
    vals = [a.get("best_val_auc") for a in history]
    vals = [v if v is not None and math.isfinite(v) else -math.inf for v in vals]
    return max(range(len(vals)), key=lambda i: (vals[i], i))


def needs_reproduce(rec: Mapping[str, Any]) -> bool:
    """A cell written before cells kept their best attempt, whose best attempt is not its last."""
    attempts = rec.get("attempts")
    attempts = [] if attempts is None else list(attempts)
    return "kept_attempt" not in rec and len(attempts) > 1 and kept_attempt(attempts) != len(attempts) - 1


def improving(attempt: Mapping[str, Any], cfg: EvalConfig) -> bool:
    """Did this run hit its cap with val AUC still rising (the converged protocol's retrain test)?"""
    rise = attempt.get("val_rise_last_third")
    return (cfg.protocol == "converged" and attempt.get("stopped") == "steps" and rise is not None
            and math.isfinite(rise) and rise > cfg.converge_tol)


def attempt_of(rec: Mapping[str, Any]) -> dict:
    """A cell written before escalation existed, as the first entry of ``attempts``."""
    return {k: rec.get(k) for k in ("step_cap", "steps", "stopped", "best_val_auc", "val_rise_last_third", "wall_s")}


def attempts_of(rec: Mapping[str, Any]) -> list[dict]:
    """A finished cell's runs (a cell written before escalation existed: its one run)."""
    return list(rec.get("attempts") or [attempt_of(rec)])


def missing_caps(history: Sequence[Mapping[str, Any]], caps: Sequence[int], level: int) -> list[int]:
    """The caps of the first ``level`` of a sequence that no run of ``history`` trained, in order."""
    done = {int(h.get("step_cap") or 0) for h in history}
    return [c for c in caps[:level] if c not in done]


def scores_digest(scores: np.ndarray) -> str:
    """Identity of a kept model's test scores: a cell record names the scores file it belongs to."""
    return hashlib.sha256(np.ascontiguousarray(scores, np.float32).tobytes()).hexdigest()[:16]


def flatten_metrics(m: dict) -> dict:
    out = {}
    for level in ("frame", "video"):
        for k in METRIC_NAMES:
            out[f"{level}_{k}"] = float(m.get(level, {}).get(k, math.nan))
    return out


def _cell_rows(arm: Arm, groups: np.ndarray, cfg: EvalConfig, ref: Mapping[str, Any] | None,
               val_rows: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The arm's training rows and the rows its early stopping reads (none without val)."""
    idx = arm.rows
    if cfg.protocol != "converged":
        return idx, idx[:0]
    if val_rows is not None:  # every row trains; the shared set stops
        return idx, np.asarray(val_rows)
    frac = cfg.val_fraction if ref is None else max(1, int(ref["n_val"])) / len(idx)
    tr, va = carve_val(groups[idx], min(frac, cfg.val_fraction), seed=seed)
    return idx[tr], idx[va]


class CellRun:
    """One cell across its attempts: its rows, every run so far (a resumed cell's ``prev`` record
    brings its own), the best model of this process in memory, and the record a cell file holds.

    ``ref``: for an RS2 arm, the cell of the budget arm whose samples it matches. ``val_rows``:
    the shared val set (``val_source="split"``) instead of a carve of the arm. ``rescore``: retrain
    the kept run even when ``prev`` holds its metrics, to score the test set again.
    ``holdout_rows``: val rows no arm stops on; the kept model's AUC there is ``holdout_val_auc``."""

    def __init__(self, arm: Arm, images: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_idx: np.ndarray,
                 videos: np.ndarray, train_cfg: TrainConfig, cfg: EvalConfig, *,
                 prev: Mapping[str, Any] | None = None, ref: Mapping[str, Any] | None = None,
                 val_rows: np.ndarray | None = None, rescore: bool = False,
                 holdout_rows: np.ndarray | None = None) -> None:
        self.arm, self.cfg, self.ref, self.prev, self.rescore = arm, cfg, ref, prev, rescore
        self.holdout_rows = holdout_rows
        self.images, self.labels, self.test_idx, self.videos = images, labels, test_idx, videos
        seed = cfg.seed_offset + arm.seed
        tcfg = dataclasses.replace(train_cfg, seed=seed)
        self.epoch_rows = None
        if arm.kind == "rs2":
            if ref is None:
                raise EdgedistalError(f"{arm.key}: RS2 needs its budget arm's finished cell")
            self.epoch_rows = int(ref["n_train"])
        tr_idx, va_idx = _cell_rows(arm, groups, cfg, ref, val_rows, seed)
        if cfg.protocol == "converged":
            tcfg = dataclasses.replace(tcfg, patience=cfg.patience, eval_every=0)
        else:  # fixed compute: no validation, no early stop, final weights
            tcfg = dataclasses.replace(tcfg, patience=0)
            if cfg.protocol == "epochs" and ref is None:
                tcfg = dataclasses.replace(tcfg, max_steps=None)
        sort_tr = np.sort(tr_idx)  # sorted reads are much faster on a memory-mapped cache
        self.x_tr, self.y_tr = np.asarray(images[sort_tr]), labels[sort_tr]
        self.x_va = np.asarray(images[np.sort(va_idx)]) if len(va_idx) else None
        self.y_va = labels[np.sort(va_idx)] if len(va_idx) else None
        self.n_train, self.n_val, self.seed = int(len(tr_idx)), int(len(va_idx)), seed
        self.n_groups = int(len(np.unique(groups[arm.rows])))
        self.val_source = None if not len(va_idx) else "carve" if val_rows is None else "split"
        if ref is not None:  # RS2: exactly the steps (hence samples) of its budget arm, best val weights
            self.first, self.ceiling = int(ref["steps"]), int(ref["steps"])
            tcfg = dataclasses.replace(tcfg, patience=0)
        elif cfg.protocol == "converged":
            self.first = converged_steps(self.n_train, tcfg.batch_size, cfg, full=arm.kind == "full")
            self.ceiling = max(self.first, ceiling_steps(self.n_train, tcfg.batch_size, cfg))
        else:
            self.first = self.ceiling = tcfg.max_steps or 0  # 0: the epochs protocol's passes decide
        self.tcfg = tcfg
        self.history: list[dict] = attempts_of(prev) if prev else []
        self.models: dict[int, Any] = {}  # only the best run of this process stays in memory
        self.trained = 0  # attempts trained by this process
        self.test_scores: np.ndarray | None = None  # the kept model's test scores, when tested here

    @property
    def caps(self) -> list[int]:
        """The caps this arm may train with (one run for RS2 and the fixed-compute protocols)."""
        if self.ref is not None or self.cfg.protocol != "converged":
            return [self.first]
        return cap_sequence(self.first, self.ceiling, self.cfg)

    def missing(self, level: int) -> list[int]:
        """The caps of the first ``level`` of its sequence this arm has not trained yet, in order."""
        if self.ref is not None or self.cfg.protocol != "converged":
            return [] if self.history else [self.first]
        return missing_caps(self.history, self.caps, level)

    def _fit(self, max_steps: int) -> Any:
        from edgedistal.models.train import fit

        cfg = dataclasses.replace(self.tcfg, max_steps=max_steps) if max_steps else self.tcfg
        return fit(self.x_tr, self.y_tr, self.x_va, self.y_va, cfg, progress=False, epoch_rows=self.epoch_rows)

    def attempt(self, cap: int) -> None:
        """Train one run from the cell's seed with this cap; keep its model if it is the best so far."""
        res = self._fit(cap)
        self.history.append({"step_cap": int(cap or res.steps), "steps": int(res.steps), "stopped": res.stopped,
                             "best_val_auc": res.best_val_auc,
                             "val_rise_last_third": val_rise_last_third(res.history), "wall_s": float(res.wall_s)})
        self.trained += 1
        if kept_attempt(self.history) == len(self.history) - 1:
            self.models = {len(self.history) - 1: res}

    def record(self) -> dict:
        """The cell's record: the kept run's test metrics (tested here, taken from ``prev`` when it
        kept the same run, else that run retrained with the same seed and cap), every attempt."""
        hist = self.history
        k = kept_attempt(hist)
        if k in self.models:
            model_part = self._tested(self.models[k], 0.0, None)
        elif (self.prev is not None and self.prev.get("kept_attempt") == k and "metrics" in self.prev
              and not self.rescore):
            model_part = {key: self.prev.get(key) for key in _MODEL_KEYS}
        else:  # an old cell kept a worse run than its best, or left no test scores: the same seed and cap again
            res = self._fit(int(hist[k]["step_cap"]))
            self.models = {k: res}
            model_part = self._tested(res, float(res.wall_s), res.best_val_auc)
            if self.rescore and self.prev is not None:  # what it recorded before, to check it reproduced
                model_part["rescored_from_auc"] = self.prev.get("frame_auc")
        top = top_attempt(hist)
        still = improving(top, self.cfg)
        arm, labels = self.arm, self.labels
        return {
            "n_train": self.n_train, "n_val": self.n_val,
            "n_real": int((labels[arm.rows] == 0).sum()), "n_fake": int((labels[arm.rows] == 1).sum()),
            "n_groups": self.n_groups,
            **model_part, "step_cap": int(top["step_cap"]),
            "wall_s_all_attempts": float(sum(a["wall_s"] or 0.0 for a in hist)), "kept_attempt": k,
            "ceiling_steps": int(self.ceiling or model_part["steps"]), "attempts": hist,
            "val_rise_last_third": top["val_rise_last_third"],
            # None under a fixed-compute protocol: without val there is nothing to judge convergence by
            "converged": None if self.cfg.protocol != "converged" or self.ref is not None else not still,
            # still rising at the ceiling; below it (a group stopped mid-climb) the cell is climbing, not capped
            "capped_improving": bool(still and self.ref is None
                                     and (not self.ceiling or int(top["step_cap"]) >= self.ceiling)),
            "train_seed": self.seed, "val_source": self.val_source,
            "val_seed": self.seed if self.val_source == "carve" else None, "epoch_rows": self.epoch_rows,
        }

    def _tested(self, res: Any, reproduce_s: float, reproduced: float | None) -> dict:
        from edgedistal.models.metrics import compute_metrics
        from edgedistal.models.predict import predict

        t0 = time.perf_counter()
        probs, _ = predict(res.model, self.images[self.test_idx], device=self.tcfg.device)
        test_s = time.perf_counter() - t0
        metrics = compute_metrics(self.labels[self.test_idx], probs, self.videos[self.test_idx])
        self.test_scores = np.asarray(probs, np.float32).ravel()
        holdout = None
        if self.holdout_rows is not None and len(self.holdout_rows):
            from sklearn.metrics import roc_auc_score

            h_probs, _ = predict(res.model, self.images[self.holdout_rows], device=self.tcfg.device)
            holdout = float(roc_auc_score(self.labels[self.holdout_rows], np.asarray(h_probs).ravel()))
        return {"steps": int(res.steps), "epochs": float(res.epochs), "samples_seen": int(res.samples_seen),
                "wall_s": float(res.wall_s), "images_per_s": float(res.images_per_s), "best_step": int(res.best_step),
                "best_val_auc": None if res.best_val_auc is None else float(res.best_val_auc),
                "stopped": res.stopped, "device": res.device, "precision": res.precision, "test_s": test_s,
                "reproduce_s": reproduce_s, "reproduced_val_auc": reproduced, "metrics": metrics,
                "test_scores_sha": scores_digest(self.test_scores), "holdout_val_auc": holdout,
                **flatten_metrics(metrics)}


def climb(runs: Sequence[CellRun], cfg: EvalConfig, on_attempt: Callable[[CellRun], None] | None = None,
          over: Callable[[], bool] | None = None,
          on_start: Callable[[CellRun, int], None] | None = None) -> list[CellRun]:
    """Train runs that climb the caps together, level by level: at each level every run trains the
    caps it lacks, then the level rises while a run at it still rose (:func:`group_level`).
    ``on_start`` before each run (a long run is not silent in a log), ``on_attempt`` after it (a
    cell is written as it ends); ``over()`` stops before a run.
    Returns the runs left with caps to train (none when the group finished)."""
    while True:
        level = group_level([(r.history, r.caps) for r in runs], cfg)
        work = [(r, c) for r in runs for c in r.missing(level)]
        if not work:
            return []
        for r, c in work:
            if over is not None and over():
                return [r for r in runs if r.missing(level)]
            if on_start is not None:
                on_start(r, c)
            r.attempt(c)
            if on_attempt is not None:
                on_attempt(r)


def train_cell(arm: Arm, images: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_idx: np.ndarray,
               videos: np.ndarray, train_cfg: TrainConfig, cfg: EvalConfig, *,
               ref: Mapping[str, Any] | None = None, val_rows: np.ndarray | None = None) -> dict:
    """Train one arm alone (a group of one, :func:`climb`) and return its record.

    Converged protocol: train with a first cap of ``max_epochs`` passes; while the run hits its
    cap with val AUC still rising, retrain from the same seed with the cap ×``grow`` up to the
    ceiling; the cell keeps the attempt with the best val AUC (:func:`kept_attempt`) and tests
    only that model."""
    run = CellRun(arm, images, labels, groups, test_idx, videos, train_cfg, cfg, ref=ref, val_rows=val_rows)
    climb([run], cfg)
    return run.record()
