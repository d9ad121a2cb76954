"""`edgedistal distill`: select a distilled subset of a manifest with active learning."""

from __future__ import annotations

import math
from pathlib import Path

import click

from edgedistal.commands.options import (
    AMOUNT,
    DEFAULT_BUDGETS,
    DEFAULT_STRATEGY,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FLOAT,
    device_option,
    examples,
    on_interrupt,
    out_option,
    recipe_options,
    threads_option,
)

EXAMPLES = examples('''
# active learning (hybrid strategy) to a fifth of the pool, snapshots at 10 % and 20 %
edgedistal distill --manifest manifest.parquet --budget 0.2 --milestones 0.1,0.2 -o d_hybrid
# labelled mode: one cheap proxy run over the labelled pool records training dynamics, then CCS
# picks half real, at most 2 per identity group (on DFDC it beat 50/50 random at 1-2 %, not at 10-20 %)
edgedistal distill --manifest manifest.parquet --mode labelled --strategy groupcap+ccs --real-fraction 0.5 \\
    --param max_per_group=2 --budget 0.02 --milestones 0.01,0.02 --backbone resnet10t --epochs 2 -o d_ccs
# a pool scored once elsewhere (e.g. on a GPU box): select from its scores, train nothing
edgedistal score --manifest manifest.parquet --onnx-dir export --split train -o pool_scores
edgedistal distill --manifest manifest.parquet --scores pool_scores --strategy typiclust -o d_typiclust
# label-balanced typicality in a self-supervised embedder's space (edgedistal pretrain)
edgedistal distill --manifest manifest.parquet --embedder runs/emb/embedder.pt --strategy balanced+typiclust \
    --budget 0.05 -o d_typ
# continue an interrupted run
edgedistal distill --manifest manifest.parquet -o d_hybrid --resume
''')

#: The names `--help` lists, spelled out so that help does not import torch (seconds) to read the
#: registries; tests/pipeline/test_distill.py checks they equal acquire.registry / scores / difficulty.
STRATEGIES = ('random', 'uncertainty', 'least_confidence', 'margin', 'entropy', 'bald', 'kcenter', 'coreset',
              'badge', 'typiclust', 'cluster_margin', 'hybrid', 'probcover', 'ccs', 'easy2hard', 'd2', 'mundig',
              'mundig_div')
SCORE_NAMES = ('aum', 'bald', 'confidence', 'el2n', 'entropy', 'forgetting', 'least_confidence', 'margin',
               'oof_el2n', 'variability')

_COLUMNS = (
    ("round", "round"), ("strategy", "strategy"), ("picked", "picked"), ("labelled", "labelled"),
    ("n_real", "real"), ("n_fake", "fake"), ("groups_covered", "groups"),
    ("mean_entropy", "entropy"), ("val_auc", "val AUC"), ("seconds", "s"),
)


def _floats(text: str | None, name: str) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = (math.nan,)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise click.BadParameter(f"{text!r}: expected positive numbers like 0.05,0.1,0.2", param_hint=name)
    return values


def _number(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: expected a fraction (0.2) or a count (500)", param_hint=name) from exc


def _params(items: tuple[str, ...]) -> dict:
    """``--param key=value`` pairs as strategy keyword arguments (numbers parsed as numbers)."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. strata=50", param_hint="--param")
        value: object = text.strip()
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3f}"
    return str(value)


def _line(cells: list[str]) -> str:
    """One fixed-width row (strategy wider) so rows line up as rounds stream in."""
    return " ".join(f"{c[:14]:<14}" if i == 1 else f"{c[:8]:>8}" for i, c in enumerate(cells))


def _row(rec: dict) -> list[str]:
    return [_cell(rec.get(key, "")) for key, _ in _COLUMNS]


@click.command("distill", epilog=EXAMPLES)
@click.option("--manifest", "-m", "manifest_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest (.parquet/.csv); selection draws from its train split only.")
@out_option("out_dir", default="distilled", file_okay=False,
            help="Run folder: distilled.parquet, rounds.csv, pool_scores.parquet, config.json, milestones/.")
@click.option("--budget", default="0.2", show_default=True, type=AMOUNT, help="Final size: fraction of the pool (0.2) or a count (5000).")
@click.option("--milestones", default=None,
              help=f"Budgets that get a snapshot manifest; each ends a round (default: evaluate's budgets "
                   f"{DEFAULT_BUDGETS} up to --budget, none with --rounds or --batch).")
@click.option("--strategy", default=DEFAULT_STRATEGY, show_default=True,
              help=f"One of {', '.join(STRATEGIES)}; prefix balanced+ / groupspread+ / paired+ to wrap. "
              "The default, plain balanced sampling, trains no proxy; on DFDC only --mode labelled "
              "groupcap+ccs beat it, at 1-2 % of the pool (docs/results.md).")
@click.option("--beta", type=POSITIVE_FLOAT, default=None,
              help="Candidate factor of hybrid / cluster_margin; hardest share cut by ccs (default: by budget).")
@click.option("--score", "score_name", default=None, type=click.Choice(SCORE_NAMES),
              help="Uncertainty score of hybrid/uncertainty: entropy, margin, least_confidence, bald; "
              "difficulty score of ccs/easy2hard/d2: aum (default), el2n, forgetting, confidence, variability, "
              "oof_el2n (needs --folds).")
@click.option("--real-fraction", type=click.FloatRange(0, 1), default=None,
              help="Share of picks from the real class (wraps the strategy in balanced+; 0.5 = even).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Other strategy settings, repeatable: strata=50, neighbours=10; for coldstart+ threshold=0.75, "
              "cold=probcover; for groupcap+ max_per_group=2, max_per_video=1 (refused without their wrapper) …")
@click.option("--balanced/--no-balanced", default=False, help="Balance picks by class (wraps the strategy).")
@click.option("--label-aware/--no-label-aware", default=True, show_default=True,
              help="Let balanced+/paired+ read every pool label (the dataset is labelled); "
              "--no-label-aware simulates active learning: predicted classes, no pairs.")
@click.option("--group-spread", "--group-cap", "group_spread", type=NON_NEGATIVE, default=0, show_default=True,
              help="At most N picks per group in each round (the groupspread+ wrapper; 0: off). Not groupcap+, "
              "which caps videos per group over the whole selection. --group-cap is its old name.")
@click.option("--seed-size", default="0.05", show_default=True, type=AMOUNT, help="Seed set: fraction or count.")
@click.option("--seed-strategy", type=click.Choice(["random", "kcenter", "strategy"]), default="random",
              show_default=True, help="strategy: the run's own strategy picks the seed set (coldstart+: label-free).")
@click.option("--rounds", type=POSITIVE, default=None, help="Number of rounds after the seed set (default 5).")
@click.option("--batch", "batch", default=None, type=AMOUNT, help="Picks per round: fraction or count (instead of --rounds).")
@click.option("--mode", type=click.Choice(["proxy", "full", "labelled"]), default="proxy", show_default=True,
              help="proxy: train once, refit a head per round; full: retrain the detector per round; "
              "labelled: one cheap proxy run over the whole labelled pool records training dynamics, then "
              "--strategy (ccs, easy2hard, d2) selects each milestone (try --backbone resnet10t --image-size 32 "
              "--epochs 2).")
@click.option("--checkpoints", type=POSITIVE, default=6, show_default=True,
              help="Labelled mode: pool scorings during the proxy run (forgetting / AUM / cartography).")
@click.option("--folds", type=NON_NEGATIVE, default=0, show_default=True,
              help="Labelled mode: also k-fold out-of-fold probabilities (whole groups per fold; 0: off).")
@click.option("--dynamics", "dynamics_dir", default=None, type=click.Path(file_okay=False),
              help="Labelled mode: reuse the training dynamics in another run's OUT/learner (same proxy settings).")
@click.option("--scores", "scores_dir", default=None, type=click.Path(file_okay=False),
              help="An `edgedistal score` folder of this manifest's pool: select from those probabilities "
              "and embeddings, training nothing (one selection after the seed set unless --rounds/--batch).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
              help="Score the pool once with this detector (torch) into OUT/scores, then select as --scores does.")
@click.option("--embedder", default=None, type=click.Path(dir_okay=False),
              help="Score the pool once with this embedder (`edgedistal pretrain`) into OUT/scores, then select "
              "in its space as --scores does (typiclust, probcover, kcenter, random; balanced+/groupcap+ wrap them).")
@recipe_options(epochs=5.0, augment=None, init=None, amp_help="Learner precision.")
@click.option("--mc-dropout", type=NON_NEGATIVE, default=0, show_default=True, help="MC-dropout passes (needed for BALD).")
@click.option("--refresh-every", type=NON_NEGATIVE, default=0, show_default=True, help="Proxy: retrain the backbone every R rounds.")
@click.option("--patience", type=NON_NEGATIVE, default=0, show_default=True, help="Stop after P rounds without val-AUC gain (0: off).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the seed set, the random picks and the proxy; -o DIR_{N} per seed for `evaluate`.")
@device_option()
@threads_option()
@click.option("--resume", is_flag=True, help="Continue the run saved in --out exactly where it stopped.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out (refused without it).")
@click.option("--materialise", type=click.Choice(["none", "symlink", "hardlink", "copy"]), default="none", show_default=True,
              help="Also recreate the picked files under OUT/subset in the source layout.")
def distill(manifest_path: Path, out_dir: Path, budget: str, milestones: str | None, strategy: str,
            beta: float | None, score_name: str | None, real_fraction: float | None, params: tuple[str, ...],
            checkpoints: int, folds: int, dynamics_dir: str | None, scores_dir: str | None,
            checkpoint: str | None, embedder: str | None, balanced: bool, group_spread: int, seed_size: str,
            seed_strategy: str, rounds: int | None, batch: str | None, mode: str, recipe: dict,
            mc_dropout: int, refresh_every: int, label_aware: bool, patience: int, seed: int, device: str,
            threads: int | None, resume: bool, overwrite: bool, materialise: str) -> None:
    """Select a distilled subset of MANIFEST's train split with active learning."""
    from edgedistal.data.manifest import Manifest, require_both_classes
    from edgedistal.pipeline.distill import DistillConfig, learner_train
    from edgedistal.utils.io import check_output_dir
    from edgedistal.utils.lock import output_lock

    kw: dict = _params(params)
    if real_fraction is not None:
        kw["real_fraction"] = real_fraction
    if beta is not None:
        kw["beta"] = beta
    if score_name is not None:
        kw["score"] = score_name
    cfg = DistillConfig(
        budget=_number(budget, "--budget"), milestones=None if milestones is None else _floats(milestones, "--milestones"), strategy=strategy,
        strategy_kw=kw, balanced=balanced, label_aware=label_aware, group_cap=group_spread,
        seed_size=_number(seed_size, "--seed-size"),
        seed_strategy=seed_strategy, rounds=rounds, batch=_number(batch, "--batch"), mode=mode,
        train=learner_train(**recipe),
        mc_dropout=mc_dropout, refresh_every=refresh_every, patience=patience, seed=seed,
        device=device, materialise=materialise, num_threads=threads, checkpoints=checkpoints, folds=folds,
        dynamics_dir=dynamics_dir, scores_dir=scores_dir, checkpoint=checkpoint, embedder=embedder,
    )
    check_output_dir(out_dir)
    manifest = Manifest.load(manifest_path)
    require_both_classes(manifest, manifest_path)
    with output_lock(out_dir, "distill"):
        refuse_finished(out_dir, resume, overwrite)
        on_interrupt(f"re-run the same command with --resume (rounds so far are saved in {out_dir})")
        res = _run(manifest, cfg, out_dir, resume, strategy, mode)
    _print_result(res, out_dir)


def refuse_finished(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """A finished run is not silently replaced: --resume reuses it, --overwrite replaces it."""
    from edgedistal.data.distilled import CONFIG_FILE, clear_finished, is_finished
    from edgedistal.errors import EdgedistalError

    if not is_finished(out_dir) or resume:
        return
    if not overwrite:
        raise EdgedistalError(f"{out_dir}: holds a finished distillation ({CONFIG_FILE})",
                              "pass --resume to reuse it, --overwrite to replace it, or another --out")
    clear_finished(out_dir)  # its summary, milestone snapshots and materialised files (only those it listed)


def _run(manifest, cfg, out_dir: Path, resume: bool, strategy: str, mode: str):
    from rich.console import Console

    from edgedistal.pipeline.distill import run_distill

    console = Console()
    console.print(f"distill: {len(manifest):,} samples, strategy [bold]{strategy}[/], mode [bold]{mode}[/] → {out_dir}")
    console.print(_line([title for _, title in _COLUMNS]), style="bold")

    def on_round(rec: dict) -> None:
        console.print(_line(_row(rec)))

    return run_distill(manifest, cfg, out_dir, resume=resume, progress=True, on_round=on_round)


def _print_result(res, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{len(res.manifest):,} picked ({res.config['stop_reason']}) — mode {res.config['mode']}")
    for _, title in _COLUMNS:
        table.add_column(title, justify="left" if title == "strategy" else "right")
    for rec in res.rounds.to_dict("records"):
        table.add_row(*_row(rec))
    console.print(table)
    auc = res.config.get("final_val_auc")
    console.print(
        f"groups covered {res.config['groups_covered']}/{res.config['groups_in_pool']}, "
        f"final val AUC {auc:.3f}" if auc is not None else
        f"groups covered {res.config['groups_covered']}/{res.config['groups_in_pool']}"
    )
    console.print(f"wrote {out_dir / 'distilled.parquet'}, rounds.csv, pool_scores.parquet, config.json")
