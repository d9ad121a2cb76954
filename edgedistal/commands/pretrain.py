"""`edgedistal pretrain`: a label-free embedder (SimCLR) on a manifest's train images."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import (
    IMAGE_SIZE,
    POSITIVE,
    POSITIVE_FLOAT,
    FiniteFloat,
    device_option,
    examples,
    out_option,
    threads_option,
)

EXAMPLES = examples('''
# a ResNet-10t embedder at 64 px, 15 minutes on this machine's CPU cores
edgedistal pretrain -m manifest.parquet -o runs/emb --backbone resnet10t --image-size 64 \\
    --time-budget-min 15 --steps 100000
# then select in its space, and start every detector from it
edgedistal distill -m manifest.parquet --embedder runs/emb/embedder.pt --strategy balanced+typiclust \\
    --budget 0.05 -o d_typ
edgedistal train -m manifest.parquet --distilled d_typ --init runs/emb/embedder.pt -o runs/det
# continue an interrupted run
edgedistal pretrain -m manifest.parquet -o runs/emb --backbone resnet10t --image-size 64 --resume
''')


@click.command("pretrain", epilog=EXAMPLES)
@click.option("--manifest", "-m", "manifest_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest (.parquet/.csv); only its train split's images are read (no labels).")
@out_option(default=Path("runs/embedder"), file_okay=False,
            help="Run folder: embedder.pt, report.md/json, loss.png (pretrain_state.pt while running).")
@click.option("--backbone", default="resnet18", show_default=True, help="Any timm model name.")
@click.option("--image-size", default=64, show_default=True, type=IMAGE_SIZE,
              help="Input size (px); use the detector's, so `train --init` and `distill --embedder` match it.")
@click.option("--steps", default=500, show_default=True, type=POSITIVE, help="Optimizer steps (the lr schedule's length).")
@click.option("--time-budget-min", default=None, type=POSITIVE_FLOAT,
              help="Stop after this many minutes; the lr schedule follows the clock so the run ends annealed.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2),
              help="Images per step (two views each).")
@click.option("--lr", default=1e-3, show_default=True, type=POSITIVE_FLOAT, help="Peak AdamW learning rate (after warm-up).")
@click.option("--weight-decay", default=1e-4, show_default=True, type=FiniteFloat(at_least=0), help="AdamW weight decay.")
@click.option("--temperature", default=0.2, show_default=True, type=POSITIVE_FLOAT, help="NT-Xent temperature.")
@click.option("--proj-dim", default=128, show_default=True, type=POSITIVE, help="Projection head output size.")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto", show_default=True,
              help="auto: bf16 on CUDA and on CPUs with AVX-512 BF16/AMX, else fp32.")
@device_option()
@threads_option()
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the init, the views and the batch order.")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the group split when the manifest has none.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Start from a local backbone state dict.")
@click.option("--pretrained", is_flag=True, help="Start from timm hub weights (needs a reachable hub).")
@click.option("--no-diagnostics", is_flag=True, help="Skip the labelled diagnostics (probe, kNN, purity).")
@click.option("--resume", is_flag=True, help="Continue from OUT/pretrain_state.pt (same options and manifest).")
def pretrain(manifest_path: Path, out: Path, backbone: str, image_size: int, steps: int, time_budget_min: float | None,
             batch_size: int, lr: float, weight_decay: float, temperature: float, proj_dim: int, amp: str,
             device: str, threads: int | None, seed: int, split_seed: int, weights: str | None, pretrained: bool,
             no_diagnostics: bool, resume: bool) -> None:
    """Self-supervised (SimCLR) embedder on the train split's images; selection runs in its space."""
    from edgedistal.data.manifest import Manifest
    from edgedistal.models.pretrain import PretrainConfig
    from edgedistal.pipeline.pretrain import REPORT_MD, pretrain_on_manifest
    from edgedistal.utils.io import check_output_dir
    from edgedistal.utils.lock import output_lock

    cfg = PretrainConfig(backbone=backbone, image_size=image_size, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, temperature=temperature, proj_dim=proj_dim, max_steps=steps,
                         amp=amp, seed=seed, device=device, num_threads=threads, weights=weights,
                         pretrained=pretrained, time_budget_s=time_budget_min * 60 if time_budget_min else None)
    check_output_dir(out)
    manifest = Manifest.load(manifest_path)
    with output_lock(out, "pretrain"):
        report = pretrain_on_manifest(manifest, cfg, out, split_seed=split_seed, resume=resume,
                                      diagnose=not no_diagnostics)
    s, q = report["summary"], report["quality"]
    click.echo(f"pretrained {s['steps']} steps on {s['n_images']:,} train images in {s['wall_s']:.0f} s on "
               f"{s['device']} ({s['precision']}, {s['images_per_s']:.0f} img/s), stopped: {s['stopped']}")
    click.echo(f"embedding: effective rank {q['effective_rank']:.1f}/{q['embedding_dim']}, "
               f"alignment {q['alignment']:.3f}, uniformity {q['uniformity']:.3f}")
    d = report.get("diagnostics") or {}
    if d.get("linear_probe_gain") is not None:
        click.echo(f"linear-probe val AUC {d['embedder']['linear_probe_val_auc']:.3f} vs random init "
                   f"{d['random_init']['linear_probe_val_auc']:.3f} (diagnostic only)")
    click.echo(f"embedder: {report['checkpoint']}\nreport: {Path(out) / REPORT_MD}")
