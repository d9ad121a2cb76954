"""Self-supervised pretraining of an :class:`Embedder` (SimCLR) on unlabelled uint8 images.

SimCLR (Chen et al. 2020, arXiv 2002.05709): two random views of each image, a projection MLP,
and the NT-Xent loss that pulls a view towards its twin and away from the other 2B−2 views of
the batch. :func:`pretrain` takes images only — it has no labels argument, so nothing it
learns can depend on a label. Augmentations are batched tensor ops on the training device
(random resized crop, flip, colour jitter, grayscale, blur), as in :mod:`edgedistal.models.augment`.

Why NT-Xent is written here rather than taken from lightly: it is ~15 lines, while lightly 1.6
pulls pytorch-lightning, hydra-core and aiohttp into every install; one code path, no fallback.

The run is resumable: a state file (weights, projection head, optimiser, sampler and RNG state,
history, elapsed time) is written atomically every ``save_every_s`` seconds and at the end,
with a fingerprint of everything that decides the weights; a resume with other settings is
refused. The state holds only tensors and plain types (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgedistal.errors import EdgedistalError
from edgedistal.models.augment import AugmentSpec, BatchAugment
from edgedistal.models.embedder import Embedder, build_embedder
from edgedistal.models.predict import amp_dtype, autocast, resolve_device
from edgedistal.models.registry import DetectorConfig
from edgedistal.models.train_state import restore_rng, rng_state
from edgedistal.utils.io import atomic_path
from edgedistal.utils.progress import Bar
from edgedistal.utils.safeload import load_pt, require_dict


@dataclass
class PretrainConfig:
    backbone: str = "resnet18"
    image_size: int = 64
    batch_size: int = 128  # images per step (2x views): NT-Xent wants large batches
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    proj_hidden: int = 512
    proj_dim: int = 128
    max_steps: int = 500
    warmup: float = 0.05  # share of the run spent warming the lr up
    crop_scale: tuple[float, float] = (0.2, 1.0)  # random resized crop, area share
    jitter: float = 0.8  # probability of colour jitter per view
    jitter_strength: float = 0.4
    grayscale: float = 0.2
    blur: float = 0.5
    amp: str = "auto"  # bf16 on CUDA / CPUs with AVX-512 BF16 or AMX, else fp32 (see predict.amp_dtype)
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    time_budget_s: float | None = None  # stop (annealed: the schedule follows the clock) after this long
    save_every_s: float = 60.0
    pretrained: bool = False  # start from timm hub weights (needs a reachable hub)
    weights: str | None = None  # start from a local backbone state dict

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(backbone=self.backbone, image_size=self.image_size)

    def fingerprint(self, n: int, data_digest: str) -> str:
        """What decides the weights (not where or how long it runs)."""
        d = {k: v for k, v in asdict(self).items()
             if k not in ("device", "num_threads", "time_budget_s", "save_every_s", "channels_last")}
        d.update(n=n, data=data_digest)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class PretrainResult:
    model: Embedder
    history: list[dict]
    steps: int
    wall_s: float
    images_per_s: float
    stopped: str
    device: str
    precision: str
    extra: dict = field(default_factory=dict)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR): cross-entropy of each view against its twin among the 2B−1 others."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    b = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def projection_head(in_dim: int, hidden: int, out: int) -> nn.Module:
    """SimCLR's MLP head (used for the loss only; the embedding is the backbone's pooled output)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out))


class SimCLRViews:
    """Two independent SimCLR views of a float NCHW batch in [0, 1], on the batch's device."""

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg
        self.rest = BatchAugment(AugmentSpec(flip=0.5, jitter=cfg.jitter, jitter_strength=cfg.jitter_strength,
                                             blur=cfg.blur, blur_sigma=(0.1, 1.5)))

    def resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random resized crop (area share ``crop_scale``, aspect 3/4–4/3) back to full size, one
        ``grid_sample`` for the whole batch."""
        b = x.shape[0]
        lo, hi = self.cfg.crop_scale
        area = lo + (hi - lo) * torch.rand(b, device=x.device)
        logr = (torch.rand(b, device=x.device) * 2 - 1) * math.log(4 / 3)
        ratio = torch.exp(logr)
        sw = torch.sqrt(area * ratio).clamp(max=1.0)
        sh = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(b, device=x.device) * 2 - 1) * (1 - sw)
        cy = (torch.rand(b, device=x.device) * 2 - 1) * (1 - sh)
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 1, 1] = sw, sh
        theta[:, 0, 2], theta[:, 1, 2] = cx, cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rest(self.resized_crop(x))
        if self.cfg.grayscale > 0:
            on = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.cfg.grayscale).to(x.dtype)
            grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
            x = on * grey + (1 - on) * x
        return x

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(x), self.view(x)


def _lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up, then cosine to zero; driven by progress so a time budget ends annealed."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    t = (progress - warmup) / max(1e-9, 1 - warmup)
    return 0.5 * (1 + math.cos(math.pi * t))


def _check(images: np.ndarray, cfg: PretrainConfig) -> None:
    s = cfg.image_size
    if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != np.uint8:
        raise EdgedistalError(f"pretrain images must be uint8 [N,{s},{s},3], got {images.dtype} {tuple(images.shape)}",
                              "load them with edgedistal.data.images.load_images(paths, image_size)")
    if len(images) < 2:
        raise EdgedistalError(f"pretraining needs at least 2 images, got {len(images)}",
                              "the manifest's train split is (nearly) empty")
    if cfg.max_steps < 1:
        raise EdgedistalError(f"steps must be >= 1, got {cfg.max_steps}", "pass --steps 500")
    if cfg.batch_size < 2:
        raise EdgedistalError(f"batch size must be >= 2 (NT-Xent needs negatives), got {cfg.batch_size}",
                              "pass --batch-size 128")
    if not 0 < cfg.temperature:
        raise EdgedistalError(f"temperature must be > 0, got {cfg.temperature}", "pass --temperature 0.2")


def _save_state(path: Path, st: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(st, tmp)


def _load_state(path: Path, fingerprint: str) -> dict[str, Any]:
    st = require_dict(load_pt(path, "pretraining state"), path, ("fingerprint",), "pretraining state")
    if st.get("fingerprint") != fingerprint:
        raise EdgedistalError(f"{path}: pretraining state is for another run (other settings or images)",
                              "resume with the same options and manifest, or drop --resume to start over")
    return st


@dataclass
class _SimCLR:
    """The pieces one SimCLR run trains with: backbone, projection head, optimiser, views."""

    model: Embedder
    head: nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    dtype: torch.dtype | None
    use_cl: bool
    device: torch.device
    views: SimCLRViews
    mean: torch.Tensor
    std: torch.Tensor

    def loss(self, images: np.ndarray, idx: np.ndarray, cfg: PretrainConfig) -> torch.Tensor:
        """NT-Xent of two views of the rows ``idx`` (uint8 NHWC on the host)."""
        bs = len(idx)
        xb = torch.from_numpy(np.ascontiguousarray(images[idx])).to(self.device, non_blocking=True)
        x = xb.permute(0, 3, 1, 2).float().div_(255.0)
        v1, v2 = self.views(x)
        v = (torch.cat([v1, v2]) - self.mean) / self.std
        if self.use_cl:
            v = v.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, cfg.amp):
            z = self.head(self.model.features(v))
        return nt_xent(z[:bs], z[bs:], cfg.temperature)


def _build(cfg: PretrainConfig) -> _SimCLR:
    """Threads, seed, device, then the models (their init draws from the seed) and optimiser."""
    from edgedistal.models.train import param_groups

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model = build_embedder(cfg.detector_config(), weights=cfg.weights, pretrained=cfg.pretrained)
    head = projection_head(model.embed_dim, cfg.proj_hidden, cfg.proj_dim)
    model.to(device)
    head.to(device)
    dtype = amp_dtype(device, cfg.amp)
    use_cl = cfg.channels_last and (device.type == "cuda" or dtype is not None)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(param_groups(nn.ModuleList([model, head]), cfg.weight_decay), lr=cfg.lr,
                            **({"fused": True} if device.type == "cuda" else {}))
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return _SimCLR(model=model, head=head, opt=opt, scaler=scaler, dtype=dtype, use_cl=use_cl, device=device,
                   views=SimCLRViews(cfg), mean=torch.tensor(model.config.mean, device=device).view(1, 3, 1, 1),
                   std=torch.tensor(model.config.std, device=device).view(1, 3, 1, 1))


@dataclass
class _Progress:
    """Where a run is: what the state file stores besides the weights."""

    perm: torch.Tensor
    cursor: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    elapsed_before: float = 0.0
    seen: int = 0


def _restore(st: dict[str, Any], sim: _SimCLR, gen: torch.Generator) -> _Progress:
    sim.model.load_state_dict(st["model"])
    sim.head.load_state_dict(st["head"])
    sim.opt.load_state_dict(st["optimizer"])
    restore_rng(st, gen, sim.device)
    return _Progress(perm=st["perm"], cursor=int(st["cursor"]), step=int(st["step"]), history=list(st["history"]),
                     elapsed_before=float(st["elapsed_s"]), seen=int(st["seen"]))


def _state(sim: _SimCLR, gen: torch.Generator, run: _Progress, fingerprint: str, elapsed: float) -> dict[str, Any]:
    return {"fingerprint": fingerprint, "model": sim.model.state_dict(), "head": sim.head.state_dict(),
            "optimizer": sim.opt.state_dict(), **rng_state(gen, sim.device),
            "perm": run.perm, "cursor": run.cursor, "step": run.step, "history": run.history,
            "elapsed_s": elapsed, "seen": run.seen}


def pretrain(images: np.ndarray, cfg: PretrainConfig = PretrainConfig(), *, state_path: str | Path | None = None,
             resume: bool = False, data_digest: str = "", progress: bool = True) -> PretrainResult:
    """SimCLR-train an embedder on uint8 NHWC RGB ``images`` (no labels: none are taken).

    ``state_path``: where the resumable training state is written (atomically); with ``resume``
    and an existing state of the same fingerprint, training continues from it. Returns the
    embedder on the CPU in eval mode.
    """
    from edgedistal.models.train import optimizer_step

    t_start = time.perf_counter()
    _check(images, cfg)
    sim = _build(cfg)
    n = len(images)
    bs = min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(cfg.seed)
    fingerprint = cfg.fingerprint(n, data_digest)
    run = _Progress(perm=torch.randperm(n, generator=gen))
    state_path = Path(state_path) if state_path is not None else None
    if resume and state_path is not None and state_path.exists():
        run = _restore(_load_state(state_path, fingerprint), sim, gen)

    def elapsed() -> float:
        return run.elapsed_before + time.perf_counter() - t_start

    total = cfg.max_steps
    log_every = max(1, min(50, total // 20))
    bar = Bar("pretrain", total, progress, eta=True)
    bar.update(run.step, "resumed" if run.step else "")
    stopped, loss_sum, loss_n, lr = "steps", torch.zeros((), device=sim.device), 0, cfg.lr
    last_save, t_train = time.perf_counter(), time.perf_counter()
    sim.model.train()
    sim.head.train()
    try:
        while run.step < total:
            spent = elapsed()
            if cfg.time_budget_s is not None and spent > cfg.time_budget_s:
                stopped = "time_budget"
                break
            if run.cursor + bs > n:
                run.perm, run.cursor = torch.randperm(n, generator=gen), 0
            idx = np.sort(run.perm[run.cursor : run.cursor + bs].numpy())
            run.cursor += bs
            loss = sim.loss(images, idx, cfg)
            progress_frac = (run.step + 0.5) / total
            if cfg.time_budget_s:
                progress_frac = max(progress_frac, spent / cfg.time_budget_s)
            lr = cfg.lr * _lr_factor(progress_frac, cfg.warmup)
            for g in sim.opt.param_groups:
                g["lr"] = lr
            optimizer_step(loss, sim.opt, sim.model, sim.scaler, None)
            run.step += 1
            run.seen += bs
            loss_sum += loss.detach()
            loss_n += 1
            if run.step % log_every == 0 or run.step == total:
                run.history.append({"step": run.step, "loss": float(loss_sum.item() / loss_n), "lr": float(lr),
                                    "elapsed_s": round(elapsed(), 2)})
                loss_sum.zero_()
                loss_n = 0
                bar.update(run.step, f"loss {run.history[-1]['loss']:.3f}")
            if state_path is not None and time.perf_counter() - last_save > cfg.save_every_s:
                _save_state(state_path, _state(sim, gen, run, fingerprint, elapsed()))
                last_save = time.perf_counter()
    finally:
        bar.close()
    if loss_n:
        run.history.append({"step": run.step, "loss": float(loss_sum.item() / loss_n), "lr": float(lr),
                            "elapsed_s": round(elapsed(), 2)})
    if state_path is not None:
        _save_state(state_path, _state(sim, gen, run, fingerprint, elapsed()))
    train_s = time.perf_counter() - t_train
    sim.model.eval().to("cpu", memory_format=torch.contiguous_format)
    return PretrainResult(
        model=sim.model, history=run.history, steps=run.step, wall_s=elapsed(),
        images_per_s=run.seen / max(train_s + run.elapsed_before, 1e-9), stopped=stopped, device=str(sim.device),
        precision={torch.bfloat16: "bf16", torch.float16: "fp16"}.get(sim.dtype, "fp32"),
    )


# -- label-free quality ------------------------------------------------------------------------
@torch.inference_mode()
def embed(model: nn.Module, images: np.ndarray, batch_size: int = 256, device: str = "auto") -> np.ndarray:
    """L2-normalised embeddings of uint8 images (fp32, the deploy graph's numbers)."""
    from edgedistal.models.predict import predict

    _, e = predict(model, images, batch_size=batch_size, device=device)  # type: ignore[arg-type]
    return e


def effective_rank(emb: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) (Roy & Vetterli 2007): 1 = collapsed."""
    x = emb - emb.mean(0, keepdims=True)
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    p = s / max(s.sum(), 1e-12)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


@torch.inference_mode()
def quality(model: Embedder, images: np.ndarray, cfg: PretrainConfig, n: int = 1024, seed: int = 0) -> dict[str, float]:
    """Label-free health of an embedding on a sample of ``images``: per-dimension std (collapse
    → 0; a uniform sphere gives 1/sqrt(D)), effective rank, and Wang & Isola's alignment (mean
    squared distance between two views of an image; lower = more invariant) and uniformity
    (log E exp(−2‖u−v‖²) over pairs; lower = more spread)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
    x = images[idx]
    emb = embed(model, x, device="cpu")
    torch.manual_seed(seed)
    views = SimCLRViews(cfg)
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    model.eval().cpu()
    a, b = [], []
    for s in range(0, len(t), 256):
        v1, v2 = views(t[s : s + 256])
        a.append(model((v1 - mean) / std)[1])
        b.append(model((v2 - mean) / std)[1])
    za, zb = torch.cat(a), torch.cat(b)
    e = torch.from_numpy(emb)
    sq = torch.cdist(e, e).pow(2)
    off = ~torch.eye(len(e), dtype=torch.bool)
    return {
        "n_images": len(x),
        "embedding_dim": int(emb.shape[1]),
        "std_per_dim": float(emb.std(0).mean()),
        "std_uniform_reference": float(1 / math.sqrt(emb.shape[1])),
        "effective_rank": effective_rank(emb),
        "alignment": float((za - zb).pow(2).sum(1).mean()),
        "uniformity": float(torch.log(torch.exp(-2 * sq[off]).mean())),
    }
