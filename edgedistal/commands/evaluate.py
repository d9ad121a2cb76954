"""`edgedistal evaluate`: metrics of a trained checkpoint on a manifest split.

Modes are separate functions chosen by the options given; ``--checkpoint`` is the first,
``--distilled`` (distilled vs random vs full over budgets and seeds) the second.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.errors import EdgedistalError


def evaluate_checkpoint_mode(checkpoint: Path, manifest_path: Path | None, split: str, out: Path | None,
                             device: str, batch_size: int, split_seed: int) -> dict:
    """Frame + video metrics of one checkpoint; prints a table, writes JSON to ``out``."""
    from edgedistal.data.manifest import Manifest
    from edgedistal.models.metrics import format_table
    from edgedistal.models.predict import evaluate_checkpoint
    from edgedistal.utils.io import write_json_atomic

    if manifest_path is None:
        raise EdgedistalError("--checkpoint needs --manifest", "pass the manifest to evaluate on")
    metrics = evaluate_checkpoint(str(checkpoint), Manifest.load(manifest_path), split=split,
                                  batch_size=batch_size, device=device, split_seed=split_seed,
                                  progress=True)
    metrics["manifest"] = str(manifest_path)
    click.echo(f"{checkpoint} on {manifest_path} [{split}]\n{format_table(metrics)}")
    if out is not None:
        write_json_atomic(out, metrics)
        click.echo(f"metrics: {out}")
    return metrics


def evaluate_distilled_mode(manifest_path: Path | None, distilled: Path, out: Path | None, budgets: str,
                            seeds: int, steps: int | None, epochs: float | None, early_stop: bool,
                            train: dict, random_mode: str, resume: bool, split_seed: int) -> dict:
    """Train the same recipe on distilled / random / full subsets; write cells, summary, report."""
    from edgedistal.data.manifest import Manifest
    from edgedistal.evaluate import EvalConfig, run_evaluation
    from edgedistal.models.train import TrainConfig
    from edgedistal.report import write_report

    if manifest_path is None:
        raise EdgedistalError("--distilled needs --manifest", "pass the manifest the distillation ran on")
    try:
        bs = tuple(float(b) for b in budgets.split(","))
    except ValueError as exc:
        raise EdgedistalError(f"--budgets {budgets!r} is not a comma list of fractions",
                              "e.g. --budgets 0.05,0.1,0.2,0.3") from exc
    protocol = "early_stop" if early_stop else "epochs" if steps is None and epochs is not None else "steps"
    if protocol == "steps" and steps is None:
        steps = 1000
    cfg = TrainConfig(max_steps=steps, epochs=epochs if epochs is not None else 10.0, **train)
    ecfg = EvalConfig(budgets=bs, seeds=seeds, protocol=protocol, random_mode=random_mode)
    out = out or Path("runs/eval")
    res = run_evaluation(Manifest.load(manifest_path), distilled_dir=distilled, budgets=bs, seeds=seeds,
                         train_cfg=cfg, out_dir=out, resume=resume, eval_cfg=ecfg, split_seed=split_seed)
    rep = write_report(out)
    click.echo(f"{res.summary['conclusion']}\ncells: {out / 'cells'}\nsummary: {out / 'summary.json'}\n"
               f"report: {rep['html']}")
    return res.summary


@click.command("evaluate")
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Checkpoint written by `edgedistal train`.")
@click.option("--manifest", "-m", "manifest_path", type=click.Path(path_type=Path), default=None)
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["train", "val", "test", "all"]), help="Which rows to evaluate.")
@click.option("--split-seed", default=0, show_default=True, type=int,
              help="Group-split seed when the manifest has no split (match `train`).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Write metrics JSON here.")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", default=256, show_default=True, type=int)
@click.option("--distilled", "-d", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Comparison mode: a distill output folder (milestones/budget_*.parquet).")
@click.option("--budgets", default="0.05,0.1,0.2,0.3", show_default=True, help="[--distilled] pool fractions.")
@click.option("--seeds", default=3, show_default=True, type=int, help="[--distilled] seeds per budget.")
@click.option("--steps", default=None, type=int, help="[--distilled] fixed optimiser steps per model (default 1000).")
@click.option("--epochs", default=None, type=float, help="[--distilled] fixed epochs per model instead of steps.")
@click.option("--early-stop", is_flag=True,
              help="[--distilled] early-stop on a by-group val carve of each arm (steps/epochs cap).")
@click.option("--backbone", default="resnet18", show_default=True, help="[--distilled] timm model name.")
@click.option("--image-size", default=128, show_default=True, type=int, help="[--distilled]")
@click.option("--train-batch-size", default=64, show_default=True, type=int, help="[--distilled]")
@click.option("--lr", default=2e-3, show_default=True, type=float, help="[--distilled]")
@click.option("--augment", type=click.Choice(["none", "light", "standard"]), default="standard",
              show_default=True, help="[--distilled]")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto", show_default=True)
@click.option("--random-mode", type=click.Choice(["samples", "groups"]), default="samples", show_default=True,
              help="[--distilled] random baseline: uniform samples or whole groups.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="[--distilled] skip finished cells.")
def evaluate(checkpoint: Path | None, manifest_path: Path | None, split: str, split_seed: int,
             out: Path | None, device: str, batch_size: int, distilled: Path | None, budgets: str,
             seeds: int, steps: int | None, epochs: float | None, early_stop: bool, backbone: str,
             image_size: int, train_batch_size: int, lr: float, augment: str, amp: str,
             random_mode: str, resume: bool) -> None:
    """Evaluate a checkpoint on a split, or (--distilled) compare distilled vs random vs full."""
    from edgedistal.utils.io import check_output_dir, check_output_file, looks_like_json
    from edgedistal.utils.lock import output_lock

    if checkpoint is not None:
        if out is not None:  # before the evaluation, not after it
            check_output_file(out, replaceable=looks_like_json)
        evaluate_checkpoint_mode(checkpoint, manifest_path, split, out, device, batch_size, split_seed)
        return
    if distilled is not None:
        train = dict(backbone=backbone, image_size=image_size, batch_size=train_batch_size, lr=lr,
                     augment=augment, amp=amp, device=device)
        folder = check_output_dir(out or Path("runs/eval"))
        with output_lock(folder, "evaluate"):
            evaluate_distilled_mode(manifest_path, distilled, out, budgets, seeds, steps, epochs, early_stop,
                                    train, random_mode, resume, split_seed)
        return
    raise EdgedistalError("nothing to evaluate",
                          "pass --checkpoint C --manifest M, or --manifest M --distilled D to compare")
