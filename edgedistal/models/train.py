"""Train a :class:`Detector` on uint8 images: fast on a GPU, the same code on a CPU.

The learner is compute-bound, so the loop avoids everything that is not the forward/backward
pass: the whole uint8 training set lives on the device when it fits (batches are indexed there),
augmentations are batched tensor ops on the device, AMP bf16 + channels_last on CUDA, no
DataLoader worker processes. Early stopping watches validation AUC and restores the best
weights; the checkpoint carries the config, the history and the metrics. The resume file
(what an interrupted run continues from, and what it refuses) is :mod:`edgedistal.models.train_state`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgedistal.data.manifest import Manifest, require_both_classes
from edgedistal.errors import EdgedistalError
from edgedistal.models.augment import BatchAugment, spec_for
from edgedistal.models.metrics import binary_metrics, chance_warning
from edgedistal.models.predict import amp_dtype, autocast, predict, resolve_device
from edgedistal.models.registry import Detector, DetectorConfig, build_detector, save_checkpoint
from edgedistal.models.train_state import (
    LoopState,
    load_training_state,
    resume_fingerprint,
    save_training_state,
)
from edgedistal.utils.progress import Bar

__all__ = ["TrainConfig", "FitResult", "fit", "predict", "resolve_device", "seed_everything", "train_on_manifest"]


@dataclass
class TrainConfig:
    backbone: str = "resnet18"
    image_size: int = 128
    embed_dim: int | None = None
    drop_rate: float = 0.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "onecycle"  # or "cosine" (linear warm-up then cosine decay)
    max_steps: int | None = None
    epochs: float = 10.0  # max_steps wins when set
    eval_every: int = 0  # steps; 0 → once per epoch (at most ~20 evaluations per run)
    patience: int = 5  # evaluations without val-AUC improvement → stop (0 disables)
    balanced: bool = True  # pos_weight = n_real / n_fake: deepfake data is ~83% fake
    augment: str = "standard"  # "none" | "light" | "standard"
    # auto: bf16 on CUDA (fp16 + grad scaling on old cards); on CPU bf16 only with AVX-512 BF16 / AMX
    # (~1.7x faster there, 11x *slower* where oneDNN emulates it), else fp32
    amp: str = "auto"
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    pretrained: bool = False
    weights: str | None = None
    #: An embedder.pt (`edgedistal pretrain`) whose backbone initialises the detector (same architecture)
    init: str | None = None
    compile: bool = False  # torch.compile the training model (CUDA; slow first step)
    warmup: float = 0.1  # fraction of steps spent warming up (both schedules)
    label_smoothing: float = 0.0
    grad_clip: float | None = 2.0
    time_budget_s: float | None = None  # stop (and keep the best weights) after this long
    device_data_max_frac: float = 0.6  # keep the data on the GPU if it takes < this of free memory

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(
            backbone=self.backbone, image_size=self.image_size, embed_dim=self.embed_dim, drop_rate=self.drop_rate
        )


@dataclass
class FitResult:
    model: Detector
    history: list[dict]
    best_val_auc: float | None
    steps: int
    epochs: float
    wall_s: float
    samples_seen: int
    images_per_s: float  # training throughput (forward + backward + augmentation), evals excluded
    best_step: int
    stopped: str = ""  # why training ended: "steps", "early_stop", "time_budget"
    device: str = ""
    val_metrics: dict = field(default_factory=dict)
    precision: str = "fp32"  # what --amp resolved to on this machine (bf16 / fp16 / fp32)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _check_inputs(x: np.ndarray, y: np.ndarray, size: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1:] != (size, size, 3) or x.dtype != np.uint8:
        raise EdgedistalError(
            f"{what} images must be uint8 [N,{size},{size},3], got {x.dtype} {tuple(x.shape)}",
            "load them with edgedistal.data.images.load_images(paths, image_size)",
        )
    if len(x) != len(y):
        raise EdgedistalError(f"{what}: {len(x)} images but {len(y)} labels")


def _place(x: np.ndarray, device: torch.device, max_frac: float) -> torch.Tensor | np.ndarray:
    """Copy uint8 images to the device when they fit; otherwise keep them on the host."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.nbytes < max_frac * free:
            return torch.from_numpy(np.ascontiguousarray(x)).to(device)
        return x
    if device.type == "cpu":
        return x  # index the (possibly memory-mapped) array per batch: no full copy in RAM
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def _batch(data: torch.Tensor | np.ndarray, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data.index_select(0, idx.to(data.device, non_blocking=True))
    order = idx.cpu().numpy()
    xb = torch.from_numpy(np.ascontiguousarray(data[np.sort(order)]))
    # restore the sampled order (sorted reads are much faster on a memmap)
    xb = xb[torch.from_numpy(np.argsort(np.argsort(order)))]
    if device.type == "cuda":
        xb = xb.pin_memory()
    return xb.to(device, non_blocking=True)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and norm parameters (the usual AdamW recipe)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, model: nn.Module,
                   scaler: torch.amp.GradScaler | None, grad_clip: float | None) -> None:
    """Backward, optional gradient clipping and the optimiser step (fp16 through a grad scaler)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


def lr_factor(cfg: TrainConfig, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1] of the run.

    ``onecycle``: warm up from lr/25 over max(warmup, 25%) of the run, cosine down to lr/1e4.
    ``cosine``: linear warm-up from 0 over ``warmup``, cosine down to 0. Driven by progress (not
    steps) so a time budget can compress the schedule and still end annealed.
    """
    if cfg.schedule not in ("onecycle", "cosine"):
        raise EdgedistalError(f"unknown schedule {cfg.schedule!r}", "use onecycle or cosine")
    onecycle = cfg.schedule == "onecycle"
    warm = max(cfg.warmup, 0.25) if onecycle else cfg.warmup
    start, end = (1 / 25, 1e-4) if onecycle else (0.0, 0.0)
    progress = min(max(progress, 0.0), 1.0)
    if warm > 0 and progress < warm:
        return start + (1 - start) * progress / warm
    t = (progress - warm) / max(1e-9, 1 - warm)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))


def _check_fit_args(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None, val_y: np.ndarray | None,
    cfg: TrainConfig, model: Detector | None,
) -> tuple[np.ndarray, np.ndarray | None, bool, Any]:
    """Refuse what would crash mid-run or write an untrained model; returns (train labels, val
    labels, whether there is validation data, the augmentation spec)."""
    train_y = np.asarray(train_y, dtype=np.int64)
    _check_inputs(train_x, train_y, cfg.image_size if model is None else model.config.image_size, "training")
    has_val = val_x is not None and val_y is not None and len(val_x) > 0
    if has_val:
        val_y = np.asarray(val_y, dtype=np.int64)
        _check_inputs(val_x, val_y, train_x.shape[1], "validation")
    if len(train_x) == 0:
        raise EdgedistalError("no training images", "the manifest's train split is empty")
    if cfg.max_steps is not None and cfg.max_steps < 1:  # 0 or -3 must not write an untrained model
        raise EdgedistalError(f"steps must be >= 1, got {cfg.max_steps}", "pass --steps 1000 (or --epochs)")
    if cfg.max_steps is None and not (math.isfinite(cfg.epochs) and cfg.epochs > 0):
        raise EdgedistalError(f"epochs must be > 0, got {cfg.epochs}", "pass --epochs 10 (or --steps)")
    if cfg.batch_size < 1:
        raise EdgedistalError(f"batch size must be >= 1, got {cfg.batch_size}", "pass --batch-size 64")
    try:
        aug_spec = spec_for(cfg.augment)
    except ValueError as exc:
        raise EdgedistalError(str(exc), "use --augment none, light or standard") from exc
    return train_y, val_y, has_val, aug_spec


def _setup_device(cfg: TrainConfig) -> torch.device:
    """Threads, seeds (before the model is built: its init draws from them) and the device."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _prepare_model(model: Detector | None, cfg: TrainConfig, device: torch.device) -> tuple[Detector, nn.Module, bool]:
    """The detector on ``device`` (built from ``cfg`` unless given), the module the loop calls
    (compiled when asked) and whether inputs go channels_last."""
    if model is None:
        model = build_detector(cfg.detector_config(), weights=cfg.weights, pretrained=cfg.pretrained)
        if cfg.init:
            from edgedistal.models.embedder import init_from_embedder

            init_from_embedder(model, cfg.init)
    model.to(device)
    # channels_last pays off on CUDA and with bf16 oneDNN kernels on CPU, not with fp32 on CPU
    use_cl = cfg.channels_last and (device.type == "cuda" or amp_dtype(device, cfg.amp) is not None)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    train_model: nn.Module = torch.compile(model) if cfg.compile else model
    return model, train_model, use_cl


def _optimizer(model: Detector, cfg: TrainConfig, device: torch.device) -> tuple[torch.optim.Optimizer, torch.dtype | None,
                                                                                 torch.amp.GradScaler | None]:
    """AdamW (fused on CUDA), the autocast dtype and, for fp16 on CUDA only, a grad scaler."""
    opt_kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": (0.9, 0.999)}
    if device.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), **opt_kwargs)
    lr_factor(cfg, 0.0)  # validate the schedule name before any work
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return opt, dtype, scaler


def _validate(model: Detector, val_data: Any, val_y: np.ndarray, batch_size: int, device: torch.device, amp: str,
              run: LoopState, rec: dict[str, Any]) -> None:
    """Val metrics into ``rec``; keep the best weights (AUC, else −log-loss) and count evaluations
    without a gain for early stopping. Leaves the model in train mode."""
    probs, _ = predict(model, val_data, batch_size=batch_size, device=device, amp=amp)
    m = binary_metrics(val_y, probs)
    rec.update({f"val_{k}": m[k] for k in ("auc", "ap", "log_loss", "balanced_acc")})
    val_auc = m["auc"] if not math.isnan(m["auc"]) else -m["log_loss"]
    if val_auc > run.best_auc:
        run.best_auc, run.best_step, run.bad_evals, run.best_val = val_auc, run.step, 0, m
        run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    else:
        run.bad_evals += 1
    model.train()


def _finish(model: Detector, run: LoopState, bs: int, n: int, wall: float, train_time: float, stopped: str,
            device: torch.device, dtype: torch.dtype | None) -> FitResult:
    """Restore the best weights, move the model to the CPU in eval mode and describe the run."""
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    model.eval()
    model.to("cpu", memory_format=torch.contiguous_format)
    has_auc = run.best_state is not None and not math.isnan(run.best_val.get("auc", math.nan))
    return FitResult(
        model=model,
        history=run.history,
        best_val_auc=float(run.best_val["auc"]) if has_auc else None,
        steps=run.step,
        epochs=run.step * bs / n,
        wall_s=wall,
        samples_seen=run.seen,
        images_per_s=run.seen / max(train_time, 1e-9),
        best_step=run.best_step if run.best_state is not None else run.step,
        stopped=stopped,
        device=str(device),
        val_metrics=run.best_val,
        precision={torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32"),
    )


def _schedule(n: int, epoch_rows: int | None, cfg: TrainConfig) -> tuple[int, int, int, int]:
    """(rows one epoch visits, batch size, total steps, steps between evaluations). RS2's epoch is a
    fresh subset of ``epoch_rows``; evaluations default to once per epoch, at most ~20 a run (tiny
    subsets have 1-step epochs)."""
    n_epoch = min(int(epoch_rows), n) if epoch_rows else n
    bs = min(cfg.batch_size, n_epoch)
    steps_per_epoch = max(1, n_epoch // bs)
    total = int(cfg.max_steps) if cfg.max_steps else max(1, int(round(cfg.epochs * steps_per_epoch)))
    eval_every = cfg.eval_every or max(steps_per_epoch, math.ceil(total / 20))
    return n_epoch, bs, total, eval_every


@dataclass
class _Inputs:
    """The training data as the loop reads it: images (on the device when they fit), labels, the
    normalisation and augmentation, the class weight and the sampler."""

    data: torch.Tensor | np.ndarray
    labels: torch.Tensor
    on_device: bool
    mean: torch.Tensor
    std: torch.Tensor
    augment: BatchAugment | None
    pos_weight: torch.Tensor | None
    gen: torch.Generator
    n: int
    n_epoch: int
    device: torch.device

    def new_perm(self) -> torch.Tensor:
        """The next epoch's order (one host→device copy per epoch, not per step)."""
        p = torch.randperm(self.n, generator=self.gen)[: self.n_epoch]
        return p.to(self.device) if self.on_device else p


def _inputs(train_x: np.ndarray, train_y: np.ndarray, model: Detector, cfg: TrainConfig, aug_spec: Any,
            device: torch.device, n_epoch: int) -> _Inputs:
    n, n_pos = len(train_x), int(train_y.sum())
    pos_weight = None
    if cfg.balanced and 0 < n_pos < n:
        pos_weight = torch.tensor((n - n_pos) / n_pos, device=device)
    data = _place(train_x, device, cfg.device_data_max_frac)
    return _Inputs(
        data=data, labels=torch.from_numpy(train_y.astype(np.float32)).to(device),
        on_device=isinstance(data, torch.Tensor),
        mean=torch.tensor(model.config.mean, device=device).view(1, 3, 1, 1),
        std=torch.tensor(model.config.std, device=device).view(1, 3, 1, 1),
        augment=BatchAugment(aug_spec) if aug_spec else None, pos_weight=pos_weight,
        gen=torch.Generator().manual_seed(cfg.seed),  # CPU generator: same batches on any device
        n=n, n_epoch=n_epoch, device=device,
    )


def _batch_loss(inp: _Inputs, idx: torch.Tensor, train_model: nn.Module, use_cl: bool, cfg: TrainConfig) -> torch.Tensor:
    """The loss of one batch: uint8 rows → augmented, normalised floats → logits → weighted BCE."""
    device = inp.device
    xb = _batch(inp.data, idx, device)
    yb = inp.labels[idx.to(device, non_blocking=True)] if not inp.on_device else inp.labels[idx]
    x = xb.permute(0, 3, 1, 2).float().div_(255.0)
    if inp.augment is not None:
        x = inp.augment(x)
    x = (x - inp.mean) / inp.std
    if use_cl:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, cfg.amp):
        logit, _ = train_model(x)
    target = yb if not cfg.label_smoothing else yb * (1 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
    return F.binary_cross_entropy_with_logits(logit.float(), target, pos_weight=inp.pos_weight)


def _set_lr(opt: torch.optim.Optimizer, cfg: TrainConfig, progress: float, t_start: float) -> float:
    """The schedule's rate at ``progress`` (or at the share of the time budget spent, if further)."""
    if cfg.time_budget_s:
        progress = max(progress, (time.perf_counter() - t_start) / cfg.time_budget_s)
    lr_now = cfg.lr * lr_factor(cfg, progress)
    for group in opt.param_groups:
        group["lr"] = lr_now
    return lr_now


def _record(run: LoopState, bs: int, n_epoch: int, train_loss: float, lr_now: float, t_start: float,
            train_time: float) -> dict[str, Any]:
    """One history row at an evaluation (val metrics are added by :func:`_validate`)."""
    return {
        "step": run.step,
        "epoch": round(run.step * bs / n_epoch, 4),
        "train_loss": train_loss,
        "lr": lr_now,
        "elapsed_s": round(time.perf_counter() - t_start, 3),
        "images_per_s": round(run.seen / max(train_time, 1e-9), 1),
    }


def fit(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None = None,
    val_y: np.ndarray | None = None,
    cfg: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    model: Detector | None = None,
    resume: str | Path | None = None,
    epoch_rows: int | None = None,
    on_step: Callable[[int, Detector], None] | None = None,
) -> FitResult:
    """Train a detector on uint8 NHWC RGB ``train_x`` (labels 0 real / 1 fake).

    With validation data, evaluates every ``cfg.eval_every`` steps (default once per epoch),
    stops after ``cfg.patience`` evaluations without an AUC gain and restores the best weights.
    ``model`` continues training an existing detector (its config wins over the cfg's backbone).
    ``checkpoint`` writes the final (best) model with config, history and metrics.
    ``resume``: a training-state file written at every evaluation (weights, optimizer, step,
    sampler and RNG state, best weights so far); if it exists, training continues from it.
    ``epoch_rows`` (RS2, Okanovic et al. 2024): every epoch trains on a fresh uniform subset of
    this many of the rows instead of all of them; ``None`` keeps the plain full pass.
    ``on_step(step, model)`` runs after every optimiser step (training dynamics record the pool's
    logits at chosen steps through it, so there is one training loop); it must not draw random
    numbers or leave the model out of train mode.
    Returns the model on the CPU in eval mode.
    """
    t_start = time.perf_counter()
    train_y, val_y, has_val, aug_spec = _check_fit_args(train_x, train_y, val_x, val_y, cfg, model)
    device = _setup_device(cfg)
    model, train_model, use_cl = _prepare_model(model, cfg, device)
    n = len(train_x)
    n_epoch, bs, total, eval_every = _schedule(n, epoch_rows, cfg)
    inp = _inputs(train_x, train_y, model, cfg, aug_spec, device, n_epoch)
    val_data = _place(val_x, device, cfg.device_data_max_frac * 0.5) if has_val else None
    opt, dtype, scaler = _optimizer(model, cfg, device)

    run = LoopState(perm=inp.new_perm())
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    fingerprint, settings = resume_fingerprint(cfg, train_x, train_y, val_y) if resume is not None else (None, None)
    if resume is not None and Path(resume).exists():
        run = load_training_state(resume, model, opt, inp.gen, device, total, n, inp.on_device, fingerprint, settings)

    bar = Bar("training", total, progress, eta=True)
    bar.update(run.step, "resumed" if run.step else "")
    stopped, train_time, lr_now = "steps", 0.0, cfg.lr
    try:
        model.train()
        t_train = time.perf_counter()
        while run.step < total:
            if run.cursor + bs > n_epoch:
                run.perm, run.cursor = inp.new_perm(), 0
            idx = run.perm[run.cursor : run.cursor + bs]
            run.cursor += bs
            loss = _batch_loss(inp, idx, train_model, use_cl, cfg)
            lr_now = _set_lr(opt, cfg, (run.step + 0.5) / total, t_start)
            optimizer_step(loss, opt, model, scaler, cfg.grad_clip)
            run.step += 1
            run.seen += bs
            loss_sum += loss.detach()
            loss_count += 1
            if on_step is not None:
                on_step(run.step, model)

            over_budget = cfg.time_budget_s is not None and time.perf_counter() - t_start > cfg.time_budget_s
            if run.step % eval_every == 0 or run.step == total or over_budget:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                train_time += time.perf_counter() - t_train
                rec = _record(run, bs, n_epoch, float(loss_sum.item() / max(loss_count, 1)), lr_now, t_start,
                              train_time)
                loss_sum.zero_()
                loss_count = 0
                if has_val:
                    _validate(model, val_data, val_y, max(bs, 256), device, cfg.amp, run, rec)
                run.history.append(rec)
                bar.update(run.step, f"loss {rec['train_loss']:.4f}" + (f" val AUC {rec['val_auc']:.4f}" if has_val else ""))
                if resume is not None:
                    save_training_state(resume, run, model, opt, inp.gen, device, total, n, fingerprint, settings)
                if has_val and cfg.patience and run.bad_evals >= cfg.patience:
                    stopped = "early_stop"
                    break
                if over_budget:
                    stopped = "time_budget"
                    break
                t_train = time.perf_counter()
            elif run.step % 10 == 0:
                bar.update(run.step, "")
    finally:
        bar.close()

    result = _finish(model, run, bs, n_epoch, time.perf_counter() - t_start, train_time, stopped, device, dtype)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, **checkpoint_extra(result, cfg))
    return result


def checkpoint_extra(result: FitResult, cfg: TrainConfig) -> dict[str, Any]:
    """What a training checkpoint carries besides weights + detector config."""
    return {
        "train_config": asdict(cfg),
        "history": result.history,
        "metrics": {"val": result.val_metrics},
        "summary": summary(result),
    }


def summary(result: FitResult) -> dict[str, Any]:
    """JSON-ready numbers about a fit (no model)."""
    return {
        "best_val_auc": result.best_val_auc,
        "best_step": result.best_step,
        "steps": result.steps,
        "epochs": round(result.epochs, 4),
        "wall_s": round(result.wall_s, 3),
        "samples_seen": result.samples_seen,
        "images_per_s": round(result.images_per_s, 1),
        "stopped": result.stopped,
        "device": result.device,
        "precision": result.precision,
    }


def train_on_manifest(
    manifest: Manifest,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    split_seed: int = 0,
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Train on the ``train`` split, early-stop on ``val``, score ``test``; write ``out_dir``.

    Writes ``detector.pt`` (checkpoint with config, history, metrics), ``metrics.json`` and
    ``split.parquet`` (the manifest with the split used), all atomically. Returns the metrics.
    While training, ``train_state.pt`` holds the state at the last evaluation; ``resume=True``
    continues from it after an interruption (it is deleted once the run finishes).
    """
    from edgedistal.data.images import load_images
    from edgedistal.data.split import ensure_split
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.utils.io import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ensure_split(manifest, seed=split_seed)
    parts = {name: manifest.split(name) for name in ("train", "val", "test")}
    if len(parts["train"]) == 0:
        raise EdgedistalError("the manifest has no train rows", "re-split it (ingest --split 0.8,0.1,0.1)")
    require_both_classes(parts["train"], "the train split")
    from edgedistal.models.registry import check_backbone

    check_backbone(cfg.backbone)  # before split.parquet: a typo leaves nothing behind
    manifest.save(out / "split.parquet")

    def images(name: str) -> np.ndarray | None:
        m = parts[name]
        return load_images(m.paths, cfg.image_size, progress=progress) if len(m) else None

    tx, vx = images("train"), images("val")
    vy = parts["val"].labels if vx is not None else None
    ckpt = out / "detector.pt"
    state = out / "train_state.pt"
    if not resume and state.exists():
        state.unlink()
    result = fit(tx, parts["train"].labels, vx, vy, cfg, checkpoint=None, progress=progress, resume=state)
    metrics: dict[str, Any] = {"train": summary(result), "splits": {k: len(v) for k, v in parts.items()}}
    if vx is not None:
        vp, _ = predict(result.model, vx, device=cfg.device)
        metrics["val"] = compute_metrics(vy, vp, parts["val"].df["video"].to_numpy())
    if len(parts["test"]):
        tp, _ = predict(result.model, images("test"), device=cfg.device)
        t = parts["test"].df
        metrics["test"] = compute_metrics(t["label"].to_numpy(), tp, t["video"].to_numpy())
    warnings = [w for name in ("val", "test") if name in metrics
                for w in [chance_warning(metrics[name], f"on {name}, the detector")] if w]
    if warnings:
        metrics["warnings"] = warnings
    result.model.to("cpu")
    extra = checkpoint_extra(result, cfg)
    extra["metrics"] = {k: v for k, v in metrics.items() if k in ("val", "test")}
    extra["split_seed"] = split_seed
    save_checkpoint(ckpt, result.model, **extra)
    metrics["checkpoint"] = str(ckpt)
    metrics["config"] = asdict(cfg)
    metrics["history"] = result.history
    write_json_atomic(out / "metrics.json", metrics)
    state.unlink(missing_ok=True)
    return metrics
