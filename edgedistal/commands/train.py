"""`edgedistal train`: train a detector on a manifest's train split (early stop on val)."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FLOAT,
    FiniteFloat,
    device_option,
    examples,
    on_interrupt,
    out_option,
    recipe_options,
    threads_option,
)

STATE, DONE = "train_state.pt", "detector.pt"

EXAMPLES = examples('''
# a ResNet-18 detector for 10 epochs, early stop on val AUC
edgedistal train -m manifest.parquet -o runs/det
# a small, quick one on the CPU with 2 threads
edgedistal train -m manifest.parquet -o runs/tiny --backbone resnet10t --image-size 64 \\
    --steps 300 --device cpu --threads 2
# the detector to deploy: trained on a distilled subset, early-stopped on the manifest's val split
edgedistal train -m manifest.parquet --distilled d_hybrid -o runs/det_distilled
# start the backbone from a self-supervised embedder (edgedistal pretrain)
edgedistal train -m manifest.parquet --init runs/emb/embedder.pt --backbone resnet10t --image-size 64 -o runs/det_init
''')


@click.command("train", epilog=EXAMPLES)
@click.option("--manifest", "-m", "manifest_path", required=True, type=click.Path(path_type=Path),
              help="Manifest (.parquet/.csv); split by group if it has no split yet.")
@out_option(default=Path("runs/train"), help="Run folder: detector.pt, metrics.json, split.parquet.")
@click.option("--distilled", "distilled", default=None, type=click.Path(path_type=Path),
              help="Train on this `distill` output's subset (DIR/distilled.parquet, or a manifest) "
                   "instead of the whole train split; val and test stay the manifest's.")
@recipe_options(epochs=10.0)
@click.option("--weight-decay", default=0.05, show_default=True, type=FiniteFloat(at_least=0), help="AdamW weight decay.")
@click.option("--schedule", type=click.Choice(["onecycle", "cosine"]), default="onecycle", show_default=True,
              help="Learning-rate schedule over --steps: one-cycle, or warm-up then cosine.")
@click.option("--eval-every", default=0, show_default=True, type=NON_NEGATIVE, help="Steps between val evaluations (0: each epoch).")
@click.option("--patience", default=5, show_default=True, type=NON_NEGATIVE, help="Evaluations without val-AUC gain before stopping (0: off).")
@click.option("--balanced/--no-balanced", default=True, show_default=True, help="Class-balanced loss.")
@click.option("--drop-rate", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Dropout before the classifier (timm drop_rate).")
@click.option("--embed-dim", default=None, type=POSITIVE, help="Project embeddings to this size (default: backbone features).")
@device_option()
@threads_option()
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the init, the augmentations and the batch order.")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the group split when the manifest has none.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Local backbone state dict (.pth/.safetensors).")
@click.option("--pretrained", is_flag=True, help="Download timm pretrained weights (needs internet).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA).")
@click.option("--time-budget-min", default=None, type=POSITIVE_FLOAT, help="Stop after this many minutes, keeping the best weights.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from OUT/train_state.pt.")
@click.option("--overwrite", is_flag=True, help="Replace a started or finished run in --out (refused without it).")
def train(manifest_path: Path, out: Path, distilled: Path | None, recipe: dict, weight_decay: float, schedule: str,
          eval_every: int, patience: int, balanced: bool, drop_rate: float, embed_dim: int | None, device: str,
          threads: int | None, seed: int, split_seed: int, weights: str | None, pretrained: bool,
          compile_: bool, time_budget_min: float | None, resume: bool, overwrite: bool) -> None:
    """Train a detector on the train split of a manifest; early-stop on val; report test metrics."""
    from edgedistal.commands.show import num, print_metrics, warn
    from edgedistal.data.manifest import Manifest, require_both_classes
    from edgedistal.models.train import TrainConfig, train_on_manifest
    from edgedistal.utils.io import check_output_dir
    from edgedistal.utils.lock import output_lock

    cfg = TrainConfig(
        **recipe, embed_dim=embed_dim, drop_rate=drop_rate, weight_decay=weight_decay, schedule=schedule,
        eval_every=eval_every, patience=patience, balanced=balanced, seed=seed, device=device, num_threads=threads,
        pretrained=pretrained, weights=weights, compile=compile_,
        time_budget_s=time_budget_min * 60 if time_budget_min else None,
    )
    check_output_dir(out)
    from edgedistal.models.embedder import check_init

    check_init(cfg.init, cfg.backbone)
    manifest = Manifest.load(manifest_path)
    require_both_classes(manifest, manifest_path)
    if distilled is not None:
        manifest = _only_distilled(manifest, distilled, split_seed)
    with output_lock(out, "train"):
        refuse_clobber(out, resume, overwrite)
        on_interrupt(f"re-run the same command with --resume (state at the last evaluation: {out / STATE})")
        metrics = train_on_manifest(manifest, cfg, out, split_seed=split_seed, resume=resume)
    t = metrics["train"]
    best = t["best_val_auc"]
    click.echo(
        f"trained {t['steps']} steps ({t['epochs']:.2f} epochs) on {t['device']} in {t['wall_s']:.1f} s, "
        f"{t['images_per_s']:.0f} img/s, stopped: {t['stopped']}, best val AUC: {num(best)}"
    )
    for name in ("val", "test"):
        if name in metrics:
            print_metrics(metrics[name], title=f"{name} split")
    for line in metrics.get("warnings", []):
        warn(line)
    click.echo(f"checkpoint: {metrics['checkpoint']}\nmetrics: {Path(out) / 'metrics.json'}")


def refuse_clobber(out: Path, resume: bool, overwrite: bool) -> None:
    """The same rule as ``distill``: a started (train_state.pt) or finished (detector.pt) run in
    --out is neither restarted from step 0 nor replaced unless asked (--resume / --overwrite)."""
    from edgedistal.errors import EdgedistalError

    state, done = out / STATE, out / DONE
    if overwrite:
        state.unlink(missing_ok=True)
        return
    if resume:
        if done.exists() and not state.exists():
            raise EdgedistalError(f"{out}: holds a finished run ({DONE}); there is nothing to resume",
                                  "pass --overwrite to train it again, or another --out")
        return
    if state.exists():
        raise EdgedistalError(f"{out}: holds an interrupted run ({STATE})",
                              "pass --resume to continue it, --overwrite to start again, or another --out")
    if done.exists():
        raise EdgedistalError(f"{out}: holds a finished run ({DONE})",
                              "pass --overwrite to replace it, or another --out")


def _only_distilled(manifest, distilled: Path, split_seed: int):
    """The manifest with its train split cut down to the distilled subset (val/test untouched)."""
    from edgedistal.data.distilled import distilled_manifest
    from edgedistal.data.manifest import Manifest
    from edgedistal.data.split import ensure_split, restrict_train

    path = distilled_manifest(distilled)
    out = restrict_train(ensure_split(manifest, seed=split_seed), Manifest.load(path), str(path))
    click.echo(f"training on the distilled subset: {(out.df['split'] == 'train').sum():,} rows ({path})")
    return out
