"""Issue 22's measurement on DFDC dev crops: the budget curve 1-20 % with paired seeds, arms
retrained until their val curve plateaus, RS2 beside the baselines, and the full arm converged.

Question answered: at which budget does a selection method beat the strongest baseline
(uniform, balanced or stratified random; paired 95 % interval over seeds), by how much, and
how does RS2 (fresh random subset every epoch, same samples seen) compare?

    # CPU, reusing the #13 proof's methods and its matching cells (fingerprints: same recipe):
    .venv/bin/python benchmarks/eval_curve_dfdc.py --device cpu --threads 1 --workers 2 \\
        --max-epochs 12 --patience 4 --reuse-cells benchmarks/results/proof_dfdc_cpu/run/eval/cells \\
        --distilled balanced+random=benchmarks/results/proof_dfdc_cpu/distilled/balanced_random \\
        --distilled hybrid=benchmarks/results/proof_dfdc_cpu/distilled/hybrid \\
        --name eval_curve_dfdc_cpu
    # smoke run (≈ 1 min, a tiny slice; proves the plumbing, not the numbers):
    .venv/bin/python benchmarks/eval_curve_dfdc.py --quick --device cpu --threads 1
    # GPU: scripts/gpu_eval_check.sh (one call)

Resumable: every model is a fingerprinted cell under ``--work``/eval/cells; a re-run trains
only what is missing, stale, or still improving at its cap below today's ceiling. Writes
``results.json``, ``results.md`` and the report (figures, pick sheets) under
``benchmarks/results/<--name>/``, stating the machine and the command to reproduce.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from distill_dfdc import load_manifest, run_workers, selection_costs, shrink  # noqa: E402

from edgedistal.errors import EdgedistalError  # noqa: E402
from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import machine_summary  # noqa: E402

CPU = dict(backbone="resnet10t", image_size=64, batch_size=64, lr=2e-3)
GPU = dict(backbone="resnet18", image_size=128, batch_size=128, lr=2e-3)
QUICK = dict(backbone="resnet10t", image_size=32, batch_size=32, lr=2e-3, max_pool=600, max_test=300,
             budgets="0.02,0.05,0.2", seeds="2", max_epochs=2.0, ceiling_epochs=4.0, min_steps=5, patience=2,
             distill_steps=10)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pack", default=None, help="packed crops (scripts/pack_dfdc.py) instead of ../shared")
    ap.add_argument("--name", default=None, help="results folder name under benchmarks/results/")
    ap.add_argument("--work", default=None, help="working folder (cells; default runs/<name>)")
    ap.add_argument("--budgets", default="0.01,0.02,0.05,0.1,0.2")
    ap.add_argument("--seeds", default="auto", help="auto (5 at ≤ 5 %%, 3 above) or a number")
    ap.add_argument("--protocol", default="converged", choices=["converged", "steps", "epochs"])
    ap.add_argument("--max-epochs", type=float, default=12.0, help="converged: first cap (passes)")
    ap.add_argument("--ceiling-epochs", type=float, default=96.0, help="converged: cap ceiling (passes)")
    ap.add_argument("--escalate", choices=("group", "cell"), default="group",
                    help="converged: the paired arms of a budget and seed climb the caps together, or each alone")
    ap.add_argument("--full-max-epochs", type=float, default=None,
                    help="converged: the full arm's first cap (passes; default --max-epochs)")
    ap.add_argument("--min-steps", type=int, default=200)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--val-source", default="carve", choices=["carve", "split"],
                    help="converged: early-stop on a carve of each arm (carve) or on the shared val split (split)")
    ap.add_argument("--val-max", type=int, default=None, help="--val-source split: at most this many val rows")
    ap.add_argument("--steps", type=int, default=1000, help="steps protocol: steps per model")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--augment", default="light", choices=["none", "light", "standard"])
    ap.add_argument("--amp", default="auto")
    ap.add_argument("--max-pool", type=int, default=0, help="cap the pool (whole groups); 0 = all")
    ap.add_argument("--max-test", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--distilled", action="append", default=None, metavar="NAME=DIR",
                    help="distillation folder(s) to evaluate; without any, --strategy is distilled here")
    ap.add_argument("--strategy", default="balanced+random")
    ap.add_argument("--distill-steps", type=int, default=600)
    ap.add_argument("--init", default=None, help="embedder.pt (`edgedistal pretrain`) that starts EVERY arm")
    ap.add_argument("--baselines", default="random,balanced,stratified,rs2",
                    help="comma list of random, balanced, stratified, rs2")
    ap.add_argument("--full-seeds", type=int, default=None,
                    help="seeds of the full arm (default: those of the largest budget; 0: no full arm, e.g. "
                         "when it converged in its own run, benchmarks/train_dfdc.py)")
    ap.add_argument("--reuse-cells", default=None,
                    help="copy cells from an earlier evaluation (only fingerprint-matching ones are used)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1, help="processes training cells side by side")
    ap.add_argument("--rescore", action="store_true",
                    help="retrain the kept run of finished cells that kept no test scores (same seed and cap)")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds; no model starts after it")
    ap.add_argument("--quick", action="store_true", help="≈ 1 min smoke run on a tiny slice")
    ap.add_argument("--fresh", action="store_true", help="delete --work's cells first")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if k in ("budgets", "seeds") or getattr(args, k, None) in (None, 0, ap.get_default(k)):
                setattr(args, k, v)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    t_start = time.perf_counter()
    import torch

    from edgedistal.models.predict import resolve_device

    dev = resolve_device(args.device)
    recipe = GPU if dev.type == "cuda" else CPU
    for k, v in recipe.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.name or ("eval_curve_dfdc_quick" if args.quick else f"eval_curve_dfdc_{dev.type}")
    results = ROOT / "benchmarks" / "results" / name
    work = Path(args.work or ROOT / "runs" / name)
    if args.fresh:
        shutil.rmtree(work / "eval", ignore_errors=True)
    budgets = tuple(sorted(float(b) for b in args.budgets.split(",")))
    command = " ".join([os.path.basename(sys.executable), "benchmarks/eval_curve_dfdc.py", *sys.argv[1:]])

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    log(f"reproduce: {command}")
    manifest = load_manifest(args)
    manifest = shrink(manifest, "train", args.max_pool, seed=1)
    manifest = shrink(manifest, "test", args.max_test, seed=2)
    log(f"manifest: {len(manifest)} crops, {manifest.df['group'].nunique()} groups")
    from edgedistal.data.images import load_images

    images = np.asarray(load_images(manifest.paths, args.image_size, progress=False))

    from edgedistal.pipeline.evaluate import EvalConfig, as_methods, run_evaluation

    methods = as_methods(args.distilled) if args.distilled else {}
    t_distill = 0.0
    if not methods:
        from edgedistal.pipeline.distill import DistillConfig, learner_train, run_distill

        t0 = time.perf_counter()
        dcfg = DistillConfig(budget=max(budgets), milestones=budgets, strategy=args.strategy,
                             seed_size=round(min(budgets) / 2, 4), seed=0, split_seed=args.split_seed,
                             train=learner_train(backbone=args.backbone, image_size=args.image_size,
                                                 max_steps=args.distill_steps, batch_size=args.batch_size,
                                                 patience=0, lr=args.lr, amp=args.amp),
                             device=str(dev), num_threads=args.threads)
        run_distill(manifest, dcfg, work / "distill", resume=True, progress=False)
        methods = {args.strategy: work / "distill"}
        t_distill = time.perf_counter() - t0
        log(f"distilled {args.strategy} in {t_distill:.0f}s")
    caveats = prefix_caveats(methods, budgets)
    for c in caveats:
        log(f"caveat: {c}")
    if args.reuse_cells:
        copied = reuse_cells(Path(args.reuse_cells), work / "eval" / "cells")
        log(f"copied {copied} earlier cell(s) from {args.reuse_cells} (used only where fingerprints match)")

    from edgedistal.models.train import TrainConfig

    tcfg = TrainConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size, lr=args.lr,
                       max_steps=args.steps if args.protocol == "steps" else 1000, augment=args.augment,
                       amp=args.amp, device=str(dev), num_threads=args.threads, eval_every=0, patience=3,
                       init=args.init)
    ecfg = EvalConfig(budgets=budgets, seeds=args.seeds, protocol=args.protocol, max_epochs=args.max_epochs,
                      ceiling_epochs=max(args.ceiling_epochs, args.max_epochs), min_steps=args.min_steps,
                      patience=args.patience, val_source=args.val_source, val_max=args.val_max,
                      baselines=tuple(args.baselines.split(",")),
                      include_full=args.full_seeds != 0, full_seeds=args.full_seeds or None,
                      full_max_epochs=args.full_max_epochs, escalate=args.escalate, rescore=args.rescore)
    t0 = time.perf_counter()

    def remaining() -> float | None:
        """Seconds left of --time-budget (None: no budget), counted from the script's start."""
        return None if args.time_budget is None else args.time_budget - (time.perf_counter() - t_start)

    deadline = remaining()
    if args.workers > 1:
        # two passes: an RS2 cell waits for its reference arm, which another worker may train
        for _ in range(2):
            run_workers(args.workers, manifest, methods, tcfg, work / "eval", ecfg, args.split_seed, remaining())
        deadline = 0.0
    res = run_evaluation(manifest, distilled=methods, train_cfg=tcfg, out_dir=work / "eval", eval_cfg=ecfg,
                         images=images, split_seed=args.split_seed, time_budget_s=deadline, progress=False,
                         log=lambda m: log(m.strip()))
    # RS2 cells wait for their reference arm (maybe trained by another worker): one more pass,
    # inside what is left of --time-budget (a cell skipped for time must not start here)
    left = remaining()
    if res.summary.get("skipped_cells") and deadline != 0.0 and (left is None or left > 0):
        res = run_evaluation(manifest, distilled=methods, train_cfg=tcfg, out_dir=work / "eval", eval_cfg=ecfg,
                             images=images, split_seed=args.split_seed, time_budget_s=left, progress=False,
                             log=lambda m: log(m.strip()))
    t_eval = time.perf_counter() - t0
    log(f"{len(res.cells)} models: {res.summary['conclusion']}")

    run = {"machine": machine_summary(str(dev)) | {"device": str(dev)}, "command": command,
           "recipe": {k: getattr(args, k) for k in ("backbone", "image_size", "batch_size", "lr", "augment", "amp",
                                                    "protocol", "max_epochs", "full_max_epochs", "ceiling_epochs", "escalate", "min_steps",
                                                    "patience", "val_source", "val_max", "seeds", "max_pool", "max_test", "workers",
                                                    "init", "baselines", "full_seeds")}
           | {"budgets": list(budgets)},
           "timing_s": {"distill": t_distill, "evaluate": t_eval, "total": time.perf_counter() - t_start},
           "caveats": caveats}
    write_json_atomic(work / "run.json", run)
    from edgedistal.pipeline.report import write_report

    rep = write_report(work, results, name=args.name)  # the work folder may be shared by several results
    costs, cost_md = selection_costs(methods, res.cells)
    out = {**run, "conclusion": res.summary["conclusion"], "summary": res.summary, "selection_cost": costs,
           "per_budget": per_budget_lines(res.summary),
           "cells": json.loads(res.cells.drop(columns=["metrics"], errors="ignore").to_json(orient="records"))}
    write_json_atomic(results / "results.json", out)
    md = Path(rep["markdown"]).read_text()
    full = (full_line(res.summary, res.cells) if args.full_seeds != 0 else
            "Left out (--full-seeds 0): the full arm converged in its own run, "
            "`benchmarks/results/train_dfdc_long/` (test AUC 0.920, 61 min on an AVX-512 2-core CPU).")
    text = (md + "\n\n## Per budget: what beats balanced random\n\n" + "\n".join(f"- {x}" for x in out["per_budget"])
            + f"\n\n## Full arm\n\n{full}\n" + ("\n## Caveats\n\n" + "\n".join(f"- {c}" for c in caveats) + "\n"
                                                if caveats else "")
            + (cost_md if args.full_seeds != 0 else "") + f"\n\nMachine: {json.dumps(run['machine'])}\n\nCommand: `{command}`\n\n"
            f"Timing (s): {json.dumps({k: round(v, 1) for k, v in run['timing_s'].items()})}\n")
    write_text_atomic(results / "results.md", text)
    log(f"results: {results}")
    return 0


def reuse_cells(src: Path, dst: Path) -> int:
    """Copy cells not already present; run_evaluation uses only those whose fingerprint matches."""
    if not src.is_dir():
        raise EdgedistalError(f"{src}: no such cells folder", "pass the cells/ folder of an earlier evaluation")
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in src.glob("*.json"):
        if not (dst / f.name).exists():
            shutil.copy2(f, dst / f.name)
            n += 1
    return n


def prefix_caveats(methods: dict, budgets: tuple[float, ...]) -> list[str]:
    """Budgets a method has no milestone for are read as its first picks, which at small budgets
    may be its seed set (random by design), not the method: say so."""
    from edgedistal.data.distilled import DistillSummary, milestone_path, read_summary
    from edgedistal.pipeline.evaluate import method_dir

    out = []
    for name, d in methods.items():
        d = method_dir(d, 0)  # distilled once per seed: every seed ran the same settings
        summary = read_summary(d) or DistillSummary()
        seed = summary.seed_size  # the run's count (0: labelled mode, no seed set) ...
        if not isinstance(seed, int):
            seed = summary.seed_setting  # ... else the configured fraction
        pool = summary.pool
        for b in budgets:
            if milestone_path(d, b).exists():
                continue
            seed_n = seed if isinstance(seed, int) or seed is None or seed > 1 else seed * (pool or 0)
            if seed_n and pool and int(round(b * pool)) <= seed_n:
                out.append(f"{name} at {b:.0%}: no milestone, and the budget lies inside its seed set "
                           f"({seed_n:.0f} picks): these cells measure the seed strategy, not {name}; "
                           "re-distil with --budgets including it and a smaller --seed-size")
    return out


def per_budget_lines(summary: dict) -> list[str]:
    """A plain statement per budget: which methods beat balanced random (paired) and by how much."""
    lines = []
    for i, b in enumerate(summary.get("budgets", [])):
        beats, others = [], []
        for m, c in (summary.get("comparisons") or {}).items():
            v = (c["points"][i].get("vs") or {}).get("balanced")
            if not v:
                continue
            txt = (f"{m} {v['paired_mean']:+.3f} AUC [{v['paired_lo']:+.3f}, {v['paired_hi']:+.3f}], "
                   f"{v['paired_n']} seeds")
            (beats if v["paired_verdict"] == "win" else others).append(f"{txt} ({v['paired_verdict']})")
        lines.append(f"{100 * b:g} %: " + (("beats balanced random: " + "; ".join(beats)) if beats
                                            else "nothing beats balanced random")
                     + (f". Others: {'; '.join(others)}" if others else ""))
    return lines


def full_line(summary: dict, cells) -> str:
    full = summary.get("full") or {}
    f = cells[cells["arm"] == "full"] if "arm" in cells else cells.iloc[:0]
    if f.empty:
        return "no full arm finished"
    wall = f["wall_s_all_attempts"] if "wall_s_all_attempts" in f else f["wall_s"]
    return (f"AUC {full.get('frame_auc_mean', float('nan')):.4f} ± {full.get('frame_auc_std') or 0:.4f} over "
            f"{len(f)} seeds; {'converged' if full.get('all_converged') else 'NOT converged (capped_improving)'}; "
            f"{f['epochs'].mean():.1f} passes, final model {f['wall_s'].mean():.0f} s, with earlier caps "
            f"{wall.astype(float).mean():.0f} s per seed (target from issue 22: within 0.02 of 0.839).")


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except EdgedistalError as exc:
        print(exc.format(), file=sys.stderr)
        raise SystemExit(2) from None
