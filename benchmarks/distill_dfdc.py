"""The whole chain on DFDC dev crops: ingest → group split → distill → evaluate → report.

Question answered: trained with the same recipe, does any distilled subset beat the strongest
baseline (uniform, balanced or stratified random) of the same size, and what does it keep of the
converged full pool's gain over chance, at what share of its training compute?

    # CPU (2 cores): distil each strategy once (≈ 5 min each on a quiet machine) ...
    for s in balanced+random hybrid balanced+typiclust; do
      .venv/bin/python benchmarks/distill_dfdc.py --device cpu --threads 2 --strategy $s --distill-only \
          --work runs/d_$s; done
    # ... then every method, the three baselines and the full pool in one evaluation
    # (converged protocol, 2 processes × 1 thread, resumable cells):
    .venv/bin/python benchmarks/distill_dfdc.py --device cpu --threads 1 --workers 2 --budgets 0.1,0.2 \
        --seeds 3 --protocol converged --max-epochs 12 --patience 4 \
        --distilled balanced+random=runs/d_balanced+random/distill --distilled hybrid=runs/d_hybrid/distill \
        --distilled balanced+typiclust=runs/d_balanced+typiclust/distill \
        --work benchmarks/results/proof_dfdc_cpu/run --results benchmarks/results/proof_dfdc_cpu
    # #13 additions, same cells (only the new methods and their stratified mix train):
    # the labelled-pool method chosen on val (benchmarks/results/labelled_val/README.md) and
    # cold-start active learning, each added with one more --distilled:
    .venv/bin/python benchmarks/distill_dfdc.py --device cpu --threads 1 --strategy coldstart+hybrid \
        --distill-only --budgets 0.1,0.2 --work runs/d_coldstart
    ... (the command above) --distilled groupcap+ccs=runs/d_groupcap_ccs \
        --distilled coldstart+hybrid=runs/d_coldstart/distill
    # GPU (one H100/H200 call): see scripts/gpu_eval_check.sh
    python3 benchmarks/distill_dfdc.py --device cuda --pack .gpu/dfdc_pack.npz --time-budget 300 ...

Strategies are chosen on the val split (``benchmarks/subset_ablation.py``), never on test.
Writes JSON + Markdown + figures under ``--results``; the working folders (cells, distillation
state, embeddings) stay under ``--work`` (cells are small JSON files: committing them lets a
later session resume the same evaluation). ``--time-budget`` (s, the whole script): no model
starts after it; a re-run finishes the rest. Under ``--protocol steps`` a short calibration run
first lowers the per-model step count so every planned model fits.
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

from edgedistal.data.manifest import Manifest  # noqa: E402
from edgedistal.errors import EdgedistalError  # noqa: E402
from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import machine_summary  # noqa: E402

CPU_RECIPE = dict(backbone="resnet10t", image_size=64, batch_size=64, steps=1000, seeds=3, max_pool=0,
                  max_test=0, distill_steps=600, lr=2e-3, amp="auto")
GPU_RECIPE = dict(backbone="resnet18", image_size=128, batch_size=128, steps=1500, seeds=3, max_pool=0,
                  max_test=0, distill_steps=600, lr=2e-3, amp="auto")


def machine(device: str) -> dict:
    return machine_summary(device)


def load_manifest(args) -> Manifest:
    """DFDC dev crops with the group split (pack: the split stored in it; shared: seed 0)."""
    from edgedistal.data.split import ensure_split

    if args.pack:
        from edgedistal.data.pack import unpack_pack

        return unpack_pack(args.pack, Path(args.work) / "pack_files")
    from edgedistal.data.archive import shared_dataset
    from edgedistal.data.layouts import read_layout

    src = shared_dataset("dfdc-faces-dev")
    if src is None:
        raise EdgedistalError("dfdc-faces-dev.tar not found under ../shared/datasets",
                              "pass --pack .gpu/dfdc_pack.npz (scripts/pack_dfdc.py builds it)")
    return ensure_split(read_layout(src, "dfdc-faces").manifest, seed=args.split_seed)


def shrink(manifest: Manifest, split: str, max_rows: int, seed: int) -> Manifest:
    """Keep whole groups of ``split`` (random order, seeded) until ``max_rows``; others untouched."""
    if not max_rows:
        return manifest
    df = manifest.df
    part = df[df["split"] == split]
    if len(part) <= max_rows:
        return manifest
    sizes = part.groupby("group").size()
    order = sizes.index.to_numpy()[np.random.default_rng(seed).permutation(len(sizes))]
    keep, total = [], 0
    for g in order:
        if total + sizes[g] > max_rows:
            continue
        keep.append(g)
        total += int(sizes[g])
    mask = (df["split"] != split) | df["group"].isin(keep)
    return manifest.where(mask.to_numpy())


def calibrate_steps(args, manifest: Manifest, images: np.ndarray, train_cfg, n_models: int,
                    seconds_left: float) -> tuple[int, dict]:
    """Time whole models (training + test pass) at two step counts; return the step count that
    fits ``seconds_left``. The slope is the step time, the intercept the fixed cost per model
    (build, data copy, test scoring); a first probe warms up cuDNN, the allocator and threads."""
    import dataclasses

    from edgedistal.models.predict import predict
    from edgedistal.models.train import fit

    df = manifest.df
    pool = np.flatnonzero((df["split"] == "train").to_numpy())
    test = np.flatnonzero((df["split"] == "test").to_numpy())
    cuda = str(train_cfg.device).startswith("cuda")
    n1, n2 = (20, 80) if cuda else (3, 12)  # a CPU step costs ~0.1-3 s: keep the probes short there
    x, y = np.asarray(images[pool]), manifest.labels[pool]

    def timed(steps: int) -> float:
        t0 = time.perf_counter()
        res = fit(x, y, None, None, dataclasses.replace(train_cfg, max_steps=steps, schedule="cosine"),
                  progress=False)
        predict(res.model, images[test], device=train_cfg.device)
        return time.perf_counter() - t0

    timed(n1)  # warm-up: cuDNN autotuning, allocator, thread pools
    t1, t2 = timed(n1), timed(n2)
    step_s = max(1e-4, (t2 - t1) / (n2 - n1))  # the difference cancels the fixed cost per model
    overhead = max(0.3, t1 - n1 * step_s)
    per_model = seconds_left / max(n_models, 1)
    steps = int(max(50, min(args.steps, (per_model - overhead) / step_s)))
    return steps, {"probe_steps": [n1, n2], "probe_s": [t1, t2], "step_s": step_s,
                   "overhead_s": overhead, "per_model_budget_s": per_model}


def _exit_with_parent() -> None:
    """A spawned worker outlives a killed parent (it is re-parented and trains on, writing cells for
    minutes): watch the parent and leave when it is gone. Finished cells are already on disk."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _worker(k: int, n: int, manifest: Manifest, methods: dict, tcfg, out: Path, ecfg, split_seed: int,
            deadline_wall: float | None) -> int:
    """One shard of the evaluation in its own process (images memory-mapped from the cache)."""
    from edgedistal.pipeline.evaluate import run_evaluation

    _exit_with_parent()

    budget = None if deadline_wall is None else max(0.0, deadline_wall - time.time())
    res = run_evaluation(manifest, distilled=methods, train_cfg=tcfg, out_dir=out, resume=True, progress=True,
                         eval_cfg=ecfg, split_seed=split_seed, time_budget_s=budget, shard=(k, n), log=print)
    return len(res.cells)


def run_workers(n: int, manifest: Manifest, methods: dict, tcfg, out: Path, ecfg, split_seed: int,
                deadline: float | None) -> None:
    """Train the evaluation's models in ``n`` processes (spawned: CUDA cannot fork)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    deadline_wall = None if deadline is None else time.time() + deadline
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(_worker, k, n, manifest, methods, tcfg, out, ecfg, split_seed, deadline_wall)
                for k in range(n)]
        for f in futs:
            f.result()


def calibrate_steps_fit(args, calib: dict, n_models: int, seconds_left: float) -> tuple[int, dict]:
    """Re-fit the step count to the time left after the probes themselves."""
    per_model = seconds_left / max(n_models, 1)
    steps = int(max(50, min(args.steps, (per_model - calib["overhead_s"]) / calib["step_s"])))
    return steps, calib | {"per_model_budget_s": per_model}


def selection_costs(methods: dict, cells) -> tuple[dict, str]:
    """Each method's selection cost vs one full-pool training (mean over the full arm's seeds)."""
    from edgedistal.pipeline.compare import selection_cost
    from edgedistal.pipeline.evaluate import method_dir

    full = cells[cells["arm"] == "full"]["wall_s"] if "arm" in cells else []
    full_s = float(np.mean(full)) if len(full) else float("nan")
    costs = {name: selection_cost(method_dir(d, 0)) for name, d in methods.items()}  # per seed: seed 0's
    for c in costs.values():
        c["vs_full_training"] = c["selection_s"] / full_s
    lines = ["", "", "## Selection cost vs one full-pool training", "",
             f"One full-pool training here: {full_s:.0f} s (mean of the full arm's seeds). Selection: the "
             "labelled proxy's training + pool scorings + selecting, or the acquisition rounds' seconds "
             "(seed model, refits, scoring) in proxy mode; image decoding excluded (shared with training).", "",
             "| method | mode | selection s | × one full training |", "|---|---|---|---|"]
    for name, c in costs.items():
        lines.append(f"| {name} | {c['mode']} | {c['selection_s']:.0f} | {c['vs_full_training']:.2f} |")
    return costs, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--pack", default=None, help="packed crops (scripts/pack_dfdc.py) instead of ../shared")
    ap.add_argument("--work", default=None, help="working folder (default runs/distill_dfdc_<device>)")
    ap.add_argument("--results", default=None, help="results folder (default benchmarks/results/distill_dfdc_<device>)")
    ap.add_argument("--budgets", default="0.05,0.1,0.2,0.3")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per trained model (all arms)")
    ap.add_argument("--protocol", default="converged", choices=["converged", "steps", "epochs"],
                    help="converged: early stop on each arm's by-group val carve, cap --max-epochs passes")
    ap.add_argument("--epochs", type=float, default=10.0, help="epochs protocol: passes per model")
    ap.add_argument("--max-epochs", type=float, default=20.0, help="converged: step cap in passes over the arm")
    ap.add_argument("--min-steps", type=int, default=200, help="converged: least steps per model")
    ap.add_argument("--max-steps", type=int, default=None, help="converged: hard step cap for every arm")
    ap.add_argument("--patience", type=int, default=5, help="converged: evaluations without val gain")
    ap.add_argument("--backbone", default=None, help="timm name (CPU recipe resnet10t, GPU resnet18)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--augment", default="light", choices=["none", "light", "standard"],
                    help="light = flips + shifts (standard adds colour, blur and JPEG re-compression)")
    ap.add_argument("--amp", default=None, help="auto (bf16 only where the CPU has AVX-512 BF16 / AMX) | bf16 | fp16 | off")
    ap.add_argument("--random-mode", default="samples", choices=["samples", "groups"])
    ap.add_argument("--max-pool", type=int, default=None, help="cap the train pool (whole groups); 0 = all")
    ap.add_argument("--max-test", type=int, default=None, help="cap the test split (whole groups); 0 = all")
    ap.add_argument("--strategy", default="balanced+random",
                    help="distillation strategy (edgedistal distill --strategy); chosen on val, see subset_ablation.py")
    ap.add_argument("--distill-mode", default="proxy", choices=["proxy", "full"])
    ap.add_argument("--distill-steps", type=int, default=None, help="steps of each distillation model")
    ap.add_argument("--distill-batch-size", type=int, default=128,
                    help="batch of the distillation detector (its small seed set is validated each epoch)")
    ap.add_argument("--distill-patience", type=int, default=0,
                    help="early-stop patience of the distillation detector (0: all steps, best val weights)")
    ap.add_argument("--rounds", type=int, default=None, help="acquisition rounds after the seed set")
    ap.add_argument("--seed-size", type=float, default=None, help="seed set (fraction); default min budget / 2")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds for the whole script")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1,
                    help="processes training models side by side on one GPU (launch-bound small models)")
    ap.add_argument("--parallel-speedup", type=float, default=None,
                    help="throughput gain assumed for --workers when calibrating (default 0.6 × workers)")
    ap.add_argument("--distilled", action="append", default=None, metavar="[NAME=]DIR",
                    help="reuse distillation folder(s) instead of distilling; repeat to compare methods")
    ap.add_argument("--fresh", action="store_true", help="ignore finished cells and distillation state")
    ap.add_argument("--distill-only", action="store_true",
                    help="stop after the distillation (evaluate later with --distilled WORK/distill)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    import torch

    from edgedistal.models.predict import resolve_device

    dev = resolve_device(args.device)
    tag = "cuda" if dev.type == "cuda" else dev.type
    recipe = dict(GPU_RECIPE if dev.type == "cuda" else CPU_RECIPE)
    for k in ("backbone", "image_size", "batch_size", "steps", "seeds", "max_pool", "max_test", "distill_steps",
              "lr", "amp"):
        v = getattr(args, k)
        if v is not None:
            recipe[k] = v
        setattr(args, k, recipe[k])
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work = args.work or str(ROOT / "runs" / f"distill_dfdc_{tag}")
    results = Path(args.results or ROOT / "benchmarks" / "results" / f"distill_dfdc_{tag}")
    work = Path(args.work)
    if args.fresh and work.exists():
        shutil.rmtree(work / "eval", ignore_errors=True)
        shutil.rmtree(work / "distill", ignore_errors=True)
    budgets = tuple(sorted(float(b) for b in args.budgets.split(",")))

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    # 1. ingest + split (+ optional shrink for CPU)
    manifest = load_manifest(args)
    manifest = shrink(manifest, "train", args.max_pool, seed=1)
    manifest = shrink(manifest, "test", args.max_test, seed=2)
    manifest = shrink(manifest, "val", args.max_test, seed=3)
    counts = manifest.df.groupby(["split", "label"]).size().unstack(fill_value=0)
    log(f"manifest: {len(manifest)} crops, {manifest.df['group'].nunique()} groups\n{counts}")
    t_ingest = time.perf_counter() - t_start

    from edgedistal.data.images import load_images

    images = load_images(manifest.paths, args.image_size, progress=False)
    images = np.asarray(images)  # RAM copy: every arm indexes it many times
    log(f"images: {images.shape} decoded/cached")

    # 2. distill (proxy mode by default: one detector trained on the seed set, a light head per round)
    from edgedistal.pipeline.distill import DistillConfig, learner_train, run_distill

    seed_size = args.seed_size or round(min(budgets) / 2, 4)
    dcfg = DistillConfig(budget=max(budgets), milestones=budgets, strategy=args.strategy,
                         seed_size=seed_size, rounds=args.rounds, mode=args.distill_mode,
                         train=learner_train(backbone=args.backbone, image_size=args.image_size,
                                             max_steps=args.distill_steps, batch_size=args.distill_batch_size,
                                             patience=args.distill_patience, lr=args.lr, amp=args.amp),
                         seed=0, split_seed=args.split_seed,
                         device=str(dev), num_threads=args.threads)
    t0 = time.perf_counter()
    from edgedistal.pipeline.evaluate import as_methods

    methods = as_methods(args.distilled) if args.distilled else {}
    ddir = next(iter(methods.values())) if methods else work / "distill"
    if methods:
        from edgedistal.data.distilled import read_config

        dconfig = read_config(ddir)
        log(f"reusing {len(methods)} distillation(s): {', '.join(f'{k}={v}' for k, v in methods.items())}")
    else:
        dconfig = run_distill(manifest, dcfg, ddir, resume=True, progress=False).config
        log(f"distilled {dconfig.get('selected')} samples in {time.perf_counter() - t0:.1f}s "
            f"({dconfig.get('groups_covered')}/{dconfig.get('groups_in_pool')} groups)")
    t_distill = time.perf_counter() - t0
    if args.distill_only:
        log(f"--distill-only: evaluate later with --distilled {ddir}")
        return 0

    # 3. evaluate: same recipe on distilled / random / full
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import EvalConfig, run_evaluation

    tcfg = TrainConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                       lr=args.lr, max_steps=args.steps if args.protocol != "epochs" else None,
                       epochs=args.epochs, augment=args.augment, amp=args.amp, device=str(dev),
                       num_threads=args.threads, eval_every=0, patience=3)
    methods = methods or {dcfg.strategy: ddir}
    ecfg = EvalConfig(budgets=budgets, seeds=args.seeds, protocol=args.protocol, random_mode=args.random_mode,
                      max_epochs=args.max_epochs, min_steps=args.min_steps, patience=args.patience,
                      max_steps=args.max_steps)
    n_models = args.seeds * ((len(methods) + 3) * len(budgets) + 1)
    calib: dict = {}
    deadline = None
    if args.time_budget:
        left = args.time_budget - (time.perf_counter() - t_start) - 15  # report + slack
        done = len(list((work / "eval" / "cells").glob("*.json"))) if (work / "eval" / "cells").exists() else 0
        if args.protocol == "steps" and done == 0:
            t_cal = time.perf_counter()
            steps, calib = calibrate_steps(args, manifest, images, tcfg, n_models, left)
            left -= time.perf_counter() - t_cal
            speedup = args.parallel_speedup or (0.6 * args.workers if args.workers > 1 else 1.0)
            steps, calib = calibrate_steps_fit(args, calib, n_models, left * speedup)
            calib["assumed_parallel_speedup"] = speedup
            if steps < args.steps:
                log(f"time budget: {args.steps} → {steps} steps per model to fit {n_models} models in {left:.0f}s")
                args.steps = steps
                tcfg.max_steps = steps
            calib["steps_chosen"] = args.steps
        deadline = args.time_budget - (time.perf_counter() - t_start) - 15
    t0 = time.perf_counter()
    if args.workers > 1:
        run_workers(args.workers, manifest, methods, tcfg, work / "eval", ecfg, args.split_seed, deadline)
        deadline = 0.0  # the final call below only collects and summarises: it starts no model
    eres = run_evaluation(manifest, distilled=methods, train_cfg=tcfg, out_dir=work / "eval", resume=True,
                          progress=True, eval_cfg=ecfg, images=images, split_seed=args.split_seed,
                          time_budget_s=deadline, log=lambda m: log(m.strip()))
    t_eval = time.perf_counter() - t0
    log(f"evaluated {len(eres.cells)} models in {t_eval:.1f}s: {eres.summary['conclusion']}")

    # 4. report + results
    recipe.update({"backbone": args.backbone, "protocol": args.protocol, "augment": args.augment,
                   "amp": args.amp, "budgets": list(budgets), "random": args.random_mode,
                   "distill": (f"{dconfig.get('mode', args.distill_mode)}/{dconfig.get('config', {}).get('strategy', args.strategy)}, "
                               f"seed {seed_size}, rounds {args.rounds or 'default'}"
                               + (f", reused from {', '.join(args.distilled)}" if args.distilled else "")),
                   "steps": args.steps if args.protocol == "steps" else None, "workers": args.workers})
    if args.protocol == "converged":
        recipe.update({"max_epochs": args.max_epochs, "min_steps": args.min_steps, "max_steps": args.max_steps,
                       "patience": args.patience})
    run = {
        "machine": machine(str(dev)) | {"device": str(dev)},
        "recipe": recipe,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "timing_s": {"ingest": t_ingest, "distill": t_distill, "evaluate": t_eval,
                     "total": time.perf_counter() - t_start},
        "calibration": calib,
    }
    write_json_atomic(work / "run.json", run)
    from edgedistal.pipeline.report import write_report

    rep = write_report(work, results)
    out = {
        **run,
        "conclusion": eres.summary["conclusion"],
        "summary": eres.summary,
        "distill": dconfig,
        "cells": json.loads(eres.cells.drop(columns=["metrics"], errors="ignore").to_json(orient="records")),
    }
    costs, cost_md = selection_costs(methods, eres.cells)
    out["selection_cost"] = costs
    write_json_atomic(results / "results.json", out)
    md = Path(rep["markdown"]).read_text()
    write_text_atomic(results / "results.md", md + cost_md + f"\n\nCommand: `{run['command']}`\n\n"
                      f"Timing (s): {json.dumps({k: round(v, 1) for k, v in run['timing_s'].items()})}\n")
    log(f"results: {results}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except EdgedistalError as exc:
        print(exc.format(), file=sys.stderr)
        raise SystemExit(2) from None
