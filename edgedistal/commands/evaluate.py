"""`edgedistal evaluate`: metrics of a trained checkpoint on a manifest split.

Modes are separate functions chosen by the options given; ``--checkpoint`` is the first,
``--distilled`` (distilled vs random vs full over budgets and seeds) the second.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import (
    DEFAULT_BUDGETS,
    device_option,
    on_interrupt,
    out_option,
    recipe_options,
    threads_option,
)
from edgedistal.errors import EdgedistalError


def evaluate_checkpoint_mode(checkpoint: Path, manifest_path: Path | None, split: str, out: Path | None,
                             device: str, batch_size: int, split_seed: int) -> dict:
    """Frame + video metrics of one checkpoint; prints a table, writes JSON to ``out``."""
    from edgedistal.commands.show import print_metrics, warn
    from edgedistal.data.manifest import Manifest
    from edgedistal.models.metrics import chance_warning
    from edgedistal.models.predict import evaluate_checkpoint
    from edgedistal.utils.io import write_json_atomic

    if manifest_path is None:
        raise EdgedistalError("--checkpoint needs --manifest", "pass the manifest to evaluate on")
    metrics = evaluate_checkpoint(str(checkpoint), Manifest.load(manifest_path), split=split,
                                  batch_size=batch_size, device=device, split_seed=split_seed,
                                  progress=True)
    metrics["manifest"] = str(manifest_path)
    print_metrics(metrics, title=f"{checkpoint} on {manifest_path} [{split}]")
    chance = chance_warning(metrics, f"on {split}, the detector")
    if chance:
        warn(chance)
    if out is not None:
        write_json_atomic(out, metrics)
        click.echo(f"metrics: {out}")
    return metrics


def evaluate_distilled_mode(manifest_path: Path | None, distilled: tuple[str, ...], out: Path | None,
                            budgets: str, seeds: str, protocol: str, steps: int | None, epochs: float | None,
                            max_epochs: float, min_steps: int, train: dict, random_mode: str, resume: bool,
                            split_seed: int, ceiling_epochs: float = 96.0, patience: int = 5,
                            val_source: str = "carve", val_max: int | None = None,
                            full_max_epochs: float | None = None, escalate: str = "group",
                            rescore: bool = False) -> dict:
    """Train the same recipe on every distilled method, the baselines and the full pool; report."""
    from edgedistal.data.manifest import Manifest
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import EvalConfig, parse_seeds, run_evaluation
    from edgedistal.pipeline.report import write_report

    if manifest_path is None:
        raise EdgedistalError("--distilled needs --manifest", "pass the manifest the distillation ran on")
    try:
        bs = tuple(float(b) for b in budgets.split(","))
    except ValueError as exc:
        raise EdgedistalError(f"--budgets {budgets!r} is not a comma list of fractions",
                              "e.g. --budgets 0.01,0.02,0.05,0.1,0.2") from exc
    if protocol == "steps" and steps is None:
        steps = 1000
    cfg = TrainConfig(max_steps=steps if protocol == "steps" else None,
                      epochs=epochs if epochs is not None else 10.0, **train)
    ecfg = EvalConfig(budgets=bs, seeds=parse_seeds(seeds), protocol=protocol, random_mode=random_mode,
                      max_epochs=max_epochs, min_steps=min_steps, patience=patience,
                      val_source=val_source, val_max=val_max, ceiling_epochs=max(ceiling_epochs, max_epochs),
                      full_max_epochs=full_max_epochs, max_steps=steps if protocol == "converged" else None,
                      escalate=escalate, rescore=rescore)
    out = out or Path("runs/eval")
    res = run_evaluation(Manifest.load(manifest_path), distilled=list(distilled), train_cfg=cfg, out_dir=out,
                         eval_cfg=ecfg, resume=resume, split_seed=split_seed, log=click.echo)
    rep = write_report(out)
    from edgedistal.commands.show import warn

    for line in res.summary.get("warnings") or []:  # chance, an unconverged full arm, capped models …
        warn(line)
    click.echo(f"{res.summary['conclusion']}\ncells: {out / 'cells'}\nsummary: {out / 'summary.json'}\n"
               f"report: {rep['html']}")
    return res.summary


def screen_mode(manifest_path: Path | None, distilled: tuple[str, ...], features: Path | None, out: Path,
                budgets: str, seeds: str, split_seed: int, split: str = "test") -> dict:
    """Screening: a logistic head per arm and seed on frozen features; writes screen.json/.md."""
    from edgedistal.data.manifest import Manifest
    from edgedistal.pipeline.evaluate import parse_seeds
    from edgedistal.pipeline.screen import run_screen

    if manifest_path is None or features is None:
        raise EdgedistalError("--protocol screen needs --manifest and --features",
                              "pass the manifest and the --out folder of `edgedistal score`")
    try:
        bs = tuple(float(b) for b in budgets.split(","))
    except ValueError as exc:
        raise EdgedistalError(f"--budgets {budgets!r} is not a comma list of fractions",
                              "e.g. --budgets 0.01,0.02,0.05,0.1,0.2") from exc
    n = parse_seeds(seeds)
    res = run_screen(Manifest.load(manifest_path), features, distilled=list(distilled), budgets=bs,
                     seeds=20 if n == "auto" else int(n), out_dir=out, split_seed=split_seed,
                     eval_split=split)
    click.echo(f"{res['conclusion']}\nscreen: {out / 'screen.md'}")
    return res


EXAMPLES = """
\b
Examples:
  # one checkpoint on the test split
  edgedistal evaluate -c runs/det/detector.pt -m manifest.parquet
  # two strategies against the baselines (random, balanced, stratified) and the full pool
  edgedistal evaluate -m manifest.parquet --distilled hybrid=runs/d_hybrid \\
      --distilled typiclust=runs/d_typ --budgets 0.1,0.2 --seeds 3 -o runs/eval
  # each seed's own distillation (distill --seed 0..4 -o runs/d_typ_0 .. runs/d_typ_4)
  edgedistal evaluate -m manifest.parquet --distilled 'typiclust=runs/d_typ_{seed}' --seeds 5 -o runs/eval
  # screening on frozen features (`edgedistal score` output): 20 paired seeds in seconds
  edgedistal evaluate --protocol screen --features scores/ -m manifest.parquet \
      --distilled hybrid=runs/d_hybrid --seeds 20 -o runs/screen
"""


@click.command("evaluate", epilog=EXAMPLES)
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Checkpoint written by `edgedistal train`.")
@click.option("--manifest", "-m", "manifest_path", type=click.Path(path_type=Path), default=None,
              help="Manifest with the split (`ingest`); --distilled: the one the subsets came from.")
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["train", "val", "test", "all"]),
              help="Which rows to evaluate (--protocol screen: val to choose a method, test to report it).")
@click.option("--split-seed", default=0, show_default=True, type=int,
              help="Group-split seed when the manifest has no split (match `train`).")
@out_option(help="--checkpoint: the metrics JSON file; --distilled: the run folder [default: runs/eval].")
@device_option()
@threads_option()
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="--checkpoint: images per inference batch.")
@click.option("--distilled", "-d", multiple=True, metavar="[NAME=]DIR",
              help="Comparison mode: an `edgedistal distill` output folder; repeat to compare several "
                   "methods (NAME defaults to the strategy it ran). A DIR holding {seed} names one "
                   "distillation per paired seed (distill --seed N -o DIR_N), so the method's own "
                   "selection variance enters the interval.")
@click.option("--budgets", default=DEFAULT_BUDGETS, show_default=True,
              help="[--distilled] pool fractions (the budget curve).")
@click.option("--seeds", default="auto", show_default=True,
              help="[--distilled] paired seeds per budget: a number, or auto (5 at ≤ 5 %, 3 above; screen: 20).")
@click.option("--protocol", type=click.Choice(["converged", "steps", "epochs", "screen"]), default="converged",
              show_default=True,
              help="[--distilled] converged: early stop on a by-group val carve of each arm, cap following its "
                   "val curve; steps: same compute for every arm; epochs: same passes; screen: a logistic "
                   "head on frozen --features (screening only; claims come from the fine-tune protocols).")
@click.option("--features", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="[--protocol screen] folder of `edgedistal score` (scores.parquet + embeddings.npy).")
@click.option("--ceiling-epochs", default=96.0, show_default=True, type=float,
              help="[--distilled] converged: a still-improving arm is retrained with its cap ×2 up to this many passes.")
@click.option("--escalate", type=click.Choice(["group", "cell"]), default="group", show_default=True,
              help="[--distilled] converged: who earns a larger cap. group: the paired arms of a budget and seed "
                   "climb together (every arm trains every cap any of them needed, each keeps its best run on "
                   "val); cell: each arm on its own val curve (the gate then decides verdicts as much as the subsets).")
@click.option("--patience", default=5, show_default=True, type=int,
              help="[--distilled] converged: evaluations without a val-AUC gain before stopping.")
@click.option("--steps", default=None, type=int,
              help="[--distilled] steps per model (steps protocol, default 1000) or hard cap (converged).")
@click.option("--epochs", default=None, type=float, help="[--distilled] passes per model (epochs protocol).")
@click.option("--max-epochs", default=30.0, show_default=True, type=float,
              help="[--distilled] converged: first step cap = this many passes over the arm's rows.")
@click.option("--full-max-epochs", default=None, type=click.FloatRange(min=0, min_open=True),
              help="[--distilled] converged: the full arm's first cap in passes (default: --max-epochs); the full "
                   "pool plateaus late, so e.g. 48 saves retraining it at 12 and 24 passes first.")
@click.option("--min-steps", default=200, show_default=True, type=int,
              help="[--distilled] converged: least steps for any arm.")
@click.option("--val-source", type=click.Choice(["carve", "split"]), default="carve", show_default=True,
              help="[--distilled] converged: early-stop on a by-group carve of each arm's own rows (carve), or "
                   "on the manifest's val split, the same rows for every arm (split; labels outside the "
                   "budget, steadier stopping for small arms).")
@click.option("--val-max", default=None, type=click.IntRange(min=2),
              help="[--val-source split] at most this many val rows (whole groups, a fixed draw).")
@click.option("--early-stop", is_flag=True, hidden=True, help="Old name of --protocol converged.")
@recipe_options(epochs=None, steps=False, batch_flag="--train-batch-size", tag="[--distilled]",
                init="Start EVERY arm (methods, baselines, full pool) from this embedder's backbone "
                     "(`edgedistal pretrain`; same --backbone); part of each cell's fingerprint.")
@click.option("--random-mode", type=click.Choice(["samples", "groups"]), default="samples", show_default=True,
              help="[--distilled] random baseline: uniform samples or whole groups.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="[--distilled] skip finished cells.")
@click.option("--rescore", is_flag=True,
              help="[--distilled] finished cells made before models kept their test scores retrain their kept "
                   "run (same seed and cap) to score the test set, so verdicts gain the seeds × test-groups "
                   "interval; a test AUC that does not reproduce is reported.")
def evaluate(checkpoint: Path | None, manifest_path: Path | None, split: str, split_seed: int,
             out: Path | None, device: str, threads: int | None, batch_size: int, distilled: tuple[str, ...], budgets: str,
             seeds: str, protocol: str, features: Path | None, ceiling_epochs: float, escalate: str, patience: int,
             steps: int | None, epochs: float | None, max_epochs: float, full_max_epochs: float | None,
             min_steps: int, val_source: str, val_max: int | None, early_stop: bool, recipe: dict, random_mode: str,
             resume: bool, rescore: bool) -> None:
    """Evaluate a checkpoint on a split, or (--distilled) compare distilled methods with the
    random / balanced / stratified baselines and the full pool, all trained the same way."""
    from edgedistal.utils.io import check_output_dir, check_output_file, looks_like_json
    from edgedistal.utils.lock import output_lock

    if checkpoint is not None:
        if out is not None:  # before the evaluation, not after it
            check_output_file(out, replaceable=looks_like_json)
        evaluate_checkpoint_mode(checkpoint, manifest_path, split, out, device, batch_size, split_seed)
        return
    if protocol == "screen":
        folder = check_output_dir(out or Path("runs/screen"))
        with output_lock(folder, "evaluate"):
            screen_mode(manifest_path, distilled, features, folder, budgets, seeds, split_seed, split)
        return
    if distilled:
        from edgedistal.models.embedder import check_init

        check_init(recipe.get("init"), recipe["backbone"])
        train = dict(**recipe, device=device, num_threads=threads)
        if early_stop:
            protocol = "converged"
        if protocol == "steps" and steps is None and epochs is not None:
            protocol = "epochs"
        folder = check_output_dir(out or Path("runs/eval"))
        with output_lock(folder, "evaluate"):
            on_interrupt(f"re-run the same command: finished models in {folder / 'cells'} are reused")
            evaluate_distilled_mode(manifest_path, distilled, out, budgets, seeds, protocol, steps, epochs,
                                    max_epochs, min_steps, train, random_mode, resume, split_seed,
                                    ceiling_epochs=ceiling_epochs, patience=patience, val_source=val_source,
                                    val_max=val_max, full_max_epochs=full_max_epochs, escalate=escalate,
                                    rescore=rescore)
        return
    raise EdgedistalError("nothing to evaluate",
                          "pass --checkpoint C --manifest M, or --manifest M --distilled D to compare")
