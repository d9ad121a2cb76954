"""The end-to-end demo on a generated dataset: what `make demo` runs.

generate → ingest (csv layout) → group split → pretrain a tiny label-free embedder (SimCLR) on the
train images → distil (active learning; and balanced typicality in the embedder's space) → evaluate
both distilled sets against the random / balanced / stratified baselines and the full pool
(converged protocol) → report → train the deployable detector on the distilled set, its backbone
initialised from the embedder → export ONNX (fp32, fp16 + int8 QDQ; detector and embedder). Every stage resumes: a re-run skips finished work. Sized to finish in a few
minutes on a 2-core CPU; the numbers it prints are for a toy dataset, not a claim about DFDC.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedistal.data.distilled import distilled_manifest
from edgedistal.data.manifest import Manifest
from edgedistal.data.synth import SynthConfig, write_dataset
from edgedistal.runtime.base import PRECISIONS
from edgedistal.utils.io import write_json_atomic

if TYPE_CHECKING:  # torch loads only when a stage runs
    from edgedistal.models.train import TrainConfig

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    n_groups: int = 48
    fakes_per_real: int = 2
    frames_per_video: int = 8
    image_size: int = 64
    backbone: str = "resnet10t"  # ~2x cheaper than resnet18 on a 2-core CPU, same family
    budget: float = 0.3
    milestones: tuple[float, ...] = (0.1, 0.3)
    seeds: int = 2
    distill_steps: int = 100
    eval_steps: int = 80  # fixed-step recipe of the deployable detector's config
    eval_epochs: float = 12.0  # converged protocol: step cap = passes over each arm's rows
    eval_min_steps: int = 40
    eval_max_steps: int = 400
    deploy_steps: int = 120
    #: the embedder: small images and few steps keep it ~30 s on 2 cores (a toy, like the rest)
    pretrain_size: int = 32
    pretrain_steps: int = 20
    pretrain_batch: int = 64
    #: evaluate the embedder-space selection beside hybrid (≈ +8 cells: its arm and its stratified
    #: baseline per budget and seed); False keeps the evaluation at its pre-embedder size
    evaluate_embedder: bool = True
    full_seeds: int | None = None  # seeds of the full arm in the evaluation (None: ``seeds``)
    calib_size: int = 128
    device: str = "auto"
    seed: int = 0


#: The evaluation on a CPU that trains in fp32 (no AVX-512 BF16 / AMX): without the embedder-space arm
#: and its stratified baseline, the full pool trained once: 9 of the evaluation's 26 models, which in
#: an idle full demo (AVX-512 BF16 EPYC) took 307 of its 910 optimiser steps and 37 of 107 s (34 %).
LITE = {"evaluate_embedder": False, "full_seeds": 1}


def sized_for_machine(cfg: DemoConfig, size: str = "auto") -> tuple[DemoConfig, str | None]:
    """The demo's evaluation sized to the machine (``size``: auto, full or lite), and a line saying
    why where it is cut. On an AVX2-only CPU the full demo ran 313–317 s against ~170 s where bf16
    runs in hardware; ``auto`` keeps every arm on a GPU or a fast-bf16 CPU."""
    if size == "full":
        return cfg, None
    if size == "auto":
        from edgedistal.models.predict import resolve_device
        from edgedistal.utils.machine import cpu_has_fast_bf16

        if resolve_device(cfg.device).type != "cpu" or cpu_has_fast_bf16():
            return cfg, None
        why = "this CPU trains in fp32 (no AVX-512 BF16 or AMX)"
    else:
        why = "--eval-size lite"
    return replace(cfg, **LITE), (f"{why}: the evaluation leaves out the embedder-space arm and trains the full "
                                 "pool once, to keep the demo near 4 min (--eval-size full keeps them)")


#: Seconds instead of minutes: for tests and a first look.
QUICK = DemoConfig(n_groups=16, frames_per_video=4, image_size=32, milestones=(0.2, 0.3), seeds=1,
                   distill_steps=20, eval_steps=20, deploy_steps=20, calib_size=16, eval_epochs=2.0,
                   pretrain_size=32, pretrain_steps=3, pretrain_batch=16,
                   eval_min_steps=10, eval_max_steps=40)


def run_demo(out_dir: str | Path, cfg: DemoConfig = DemoConfig(), *, progress: bool = True,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every stage into ``out_dir`` and return a summary (also written to ``demo.json``);
    stage lines go to ``log`` (default: this module's logger at info level)."""
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import EvalConfig, run_evaluation
    from edgedistal.pipeline.report import write_report

    log = log or _log.info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str) -> Callable[[], None]:
        t0 = time.perf_counter()
        log(f"[demo] {name} ...")
        return lambda: timings.__setitem__(name, round(time.perf_counter() - t0, 1))

    done = stage("generate dataset")
    write_dataset(out / "data", SynthConfig(n_groups=cfg.n_groups, fakes_per_real=cfg.fakes_per_real,
                                            frames_per_video=cfg.frames_per_video, size=cfg.image_size,
                                            seed=cfg.seed))
    done()

    done = stage("ingest + group split")
    manifest_path = out / "manifest.parquet"
    result = read_layout(out / "data", "csv", source="synth")
    manifest = group_split(result.manifest, (0.6, 0.15, 0.25), seed=cfg.seed)
    manifest.save(manifest_path)
    done()

    done = stage("pretrain a label-free embedder (SimCLR)")
    from edgedistal.models.pretrain import PretrainConfig
    from edgedistal.pipeline.pretrain import EMBEDDER_FILE, pretrain_on_manifest

    embedder_path = out / "embedder" / EMBEDDER_FILE
    if not embedder_path.exists():
        pretrain_on_manifest(manifest, PretrainConfig(backbone=cfg.backbone, image_size=cfg.pretrain_size,
                                                      batch_size=cfg.pretrain_batch, max_steps=cfg.pretrain_steps,
                                                      device=cfg.device, seed=cfg.seed),
                             out / "embedder", resume=True, progress=progress)
    done()

    train_cfg = TrainConfig(backbone=cfg.backbone, image_size=cfg.image_size, batch_size=32,
                            max_steps=cfg.eval_steps, eval_every=0, patience=0, device=cfg.device,
                            seed=cfg.seed)

    dist = _distill(out, manifest, cfg, embedder_path, stage, progress)

    done = stage("evaluate distilled vs random vs full")
    ecfg = EvalConfig(budgets=cfg.milestones, seeds=cfg.seeds, protocol="converged",
                      max_epochs=cfg.eval_epochs, min_steps=cfg.eval_min_steps, max_steps=cfg.eval_max_steps,
                      patience=3, baselines=("random", "balanced", "stratified"),  # no RS2: keeps the demo's minutes
                      full_seeds=cfg.full_seeds)
    methods = {"hybrid": out / "distilled"}
    if cfg.evaluate_embedder:
        methods["emb_typiclust"] = out / "distilled_embedder"
    ev = run_evaluation(manifest, distilled=methods, train_cfg=train_cfg,
                        eval_cfg=ecfg, out_dir=out / "eval", resume=True, progress=progress, log=log)
    done()

    done = stage("report")
    rep = write_report(out / "eval")
    done()

    done = stage("train deployable detector on the distilled set + export ONNX")
    detector_path, export_dir = _deploy(out, manifest, replace(train_cfg, max_steps=cfg.deploy_steps,
                                                               init=str(embedder_path)), embedder_path, cfg)
    done()

    summary = {
        "out_dir": str(out),
        "manifest": str(manifest_path),
        "distilled": str(distilled_manifest(out / "distilled")),
        "distilled_rows": len(dist.manifest),
        "pool_rows": int((manifest.df["split"] == "train").sum()),
        "report_html": str(rep["html"]),
        "conclusion": rep.get("conclusion", ""),
        "detector": str(detector_path),
        "embedder": str(embedder_path),
        "embedder_report": str(out / "embedder" / "report.md"),
        "export_dir": str(export_dir),
        "timings_s": timings,
        "eval_summary": ev.summary,
    }
    write_json_atomic(out / "demo.json", summary)
    return summary


def _distill(out: Path, manifest: Manifest, cfg: DemoConfig, embedder_path: Path,
             stage: Callable[[str], Callable[[], None]], progress: bool):
    """Two distillations: active learning (hybrid) and balanced typicality in the embedder's space."""
    from edgedistal.pipeline.distill import DistillConfig, learner_train, run_distill

    done = stage("distill (active learning)")
    dcfg = DistillConfig(budget=cfg.budget, milestones=cfg.milestones, strategy="hybrid", seed_size=0.05,
                         train=learner_train(backbone=cfg.backbone, image_size=cfg.image_size,
                                             max_steps=cfg.distill_steps, batch_size=32),
                         device=cfg.device, seed=cfg.seed)
    dist = run_distill(manifest, dcfg, out / "distilled", resume=(out / "distilled").exists(),
                       progress=progress)
    done()

    done = stage("distill in the embedder's space (balanced typicality)")
    ecfg_emb = DistillConfig(budget=cfg.budget, milestones=cfg.milestones, strategy="balanced+typiclust",
                             seed_size=0.05, embedder=str(embedder_path), device=cfg.device, seed=cfg.seed)
    run_distill(manifest, ecfg_emb, out / "distilled_embedder", resume=(out / "distilled_embedder").exists(),
                progress=progress)
    done()

    return dist


def _deploy(out: Path, manifest: Manifest, train_cfg: TrainConfig, embedder_path: Path,
            cfg: DemoConfig) -> tuple[Path, Path]:
    """The detector trained on the distilled subset, then it and the embedder exported (fp32,
    fp16, int8 calibrated on the subset); each step skipped when its output is there."""
    from edgedistal.deploy.export import SIDECAR, export_all

    detector_path = out / "detector.pt"
    export_dir = out / "export"
    subset = distilled_manifest(out / "distilled")
    if not detector_path.exists():
        _train_deployable(manifest, Manifest.load(subset), train_cfg, detector_path)
    if not (export_dir / SIDECAR).exists():
        export_all(detector_path, export_dir, precisions=PRECISIONS,
                   calib_manifest=subset, calib_size=cfg.calib_size)
    if not (export_dir / "embedder.json").exists():  # the embedder beside the detector
        export_all(embedder_path, export_dir, precisions=PRECISIONS,
                   calib_manifest=subset, calib_size=cfg.calib_size)
    return detector_path, export_dir


def _train_deployable(manifest: Manifest, distilled: Manifest, train_cfg: TrainConfig, path: Path) -> None:
    """Train the detector users would deploy: on the distilled subset, early-stopped on val."""
    from edgedistal.data.images import load_images
    from edgedistal.models.registry import save_checkpoint
    from edgedistal.models.train import fit

    val = manifest.split("val")
    x = load_images(distilled.paths, train_cfg.image_size)
    vx = load_images(val.paths, train_cfg.image_size)
    res = fit(x, distilled.labels, vx, val.labels, train_cfg, progress=False)
    save_checkpoint(path, res.model, history=res.history, best_val_auc=res.best_val_auc,
                    trained_on=str(len(distilled)) + " distilled samples")

