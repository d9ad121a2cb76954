"""Which *composition* of a training subset teaches a from-scratch detector most? (val split only)

A selection strategy decides two things: which identities a subset covers and how each identity
is represented (its real source video, its fakes, or both). This ablation isolates the second
with label-aware random subsets of one size, trained with one recipe, scored on the **val**
split (never the test split, so choosing a distillation strategy from it is not tuning on test):

- ``random``: uniform samples (what the evaluation's random baseline draws);
- ``balanced``: half real, half fake, independent random groups;
- ``balanced_spread``: half real, the fakes spread one per group before any group gets a second;
- ``paired1`` / ``paired2``: random groups, each contributing its real source video and 1 (2)
  of its fakes, so every fake in the subset is seen next to the real face it was made from;
- ``distilled``: the ``--distilled`` run's milestone at this budget (``distill_dfdc.py
  --distill-only``; its learner saw the val split for model selection, so this arm is mildly
  optimistic here).

    .venv/bin/python benchmarks/subset_ablation.py --budget 0.2 --steps 600 --threads 2

Writes ``benchmarks/results/subset_ablation_<device>_<budget>pct.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import machine_summary  # noqa: E402

ARMS = ("random", "balanced", "balanced_spread", "paired1", "paired2", "full")


def subset(arm: str, y: np.ndarray, groups: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (into the pool) of an ``n``-sample subset with the arm's composition."""
    if arm == "full":
        return np.arange(len(y))
    if arm == "random":
        return np.sort(rng.choice(len(y), n, replace=False))
    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    if arm == "balanced_spread":  # half real; fakes one per group (round-robin) for identity coverage
        nr = min(len(real), n // 2)
        f = rng.permutation(fake)
        rank = pd.Series(groups[f]).groupby(groups[f]).cumcount().to_numpy()
        f = f[np.argsort(rank, kind="stable")]
        return np.sort(np.concatenate([rng.choice(real, nr, replace=False), f[: n - nr]]))
    if arm == "balanced":
        nr = min(len(real), n // 2)
        return np.sort(np.concatenate([rng.choice(real, nr, replace=False),
                                       rng.choice(fake, n - nr, replace=False)]))
    per = int(arm.removeprefix("paired"))
    fakes_of: dict = {}
    for i in rng.permutation(fake):
        fakes_of.setdefault(groups[i], []).append(i)
    picked: list[int] = []
    for r in rng.permutation(real):  # each real with `per` of its own fakes
        fs = fakes_of.get(groups[r], [])[:per]
        if not fs:
            continue
        picked += [int(r), *map(int, fs)]
        if len(picked) >= n:
            break
    return np.sort(np.asarray(picked[:n], np.int64))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=0.2)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--backbone", default="resnet10t")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--amp", default="auto", help="auto picks bf16 only on CPUs with AVX-512 BF16 / AMX")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pack", default=None)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--results", default=None)
    ap.add_argument("--distilled", action="append", default=[], metavar="[ARM=]DIR",
                    help="distillation folder for the 'distilled' arm, or ARM=DIR for a named arm (repeatable)")
    args = ap.parse_args(argv)

    import torch
    from distill_dfdc import load_manifest

    from edgedistal.data.distilled import milestone_path
    from edgedistal.data.images import load_images
    from edgedistal.models.metrics import binary_metrics
    from edgedistal.models.train import TrainConfig, fit, predict, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    args.work = str(ROOT / "runs" / "subset_ablation")
    manifest = load_manifest(args)  # the very split distill_dfdc.py evaluates on: only its val is read here
    images = load_images(manifest.paths, args.image_size, progress=True)
    split = manifest.df["split"].to_numpy()
    pool, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    y_all, g_all = manifest.labels, manifest.df["group"].to_numpy()
    y, groups = y_all[pool], g_all[pool]
    ids = manifest.df["sample_id"].astype(str).to_numpy()[pool]
    xv, yv = np.ascontiguousarray(images[val]), y_all[val]
    n = int(round(args.budget * len(pool)))
    from edgedistal.utils.io import read_json

    tag = "cuda" if dev.type == "cuda" else "cpu"
    out = Path(args.results or ROOT / "benchmarks" / "results")
    name = f"subset_ablation_{tag}_{round(args.budget * 100)}pct"
    same = ("budget", "steps", "backbone", "image_size", "batch_size", "lr", "amp", "split_seed")
    old = read_json(out / f"{name}.json") if (out / f"{name}.json").exists() else {}
    rows = [r for r in old.get("rows", []) if all(old["args"].get(k) == getattr(args, k) for k in same)]
    dirs = dict(d.split("=", 1) if "=" in d else ("distilled", d) for d in args.distilled)
    done = {(r["arm"], r["seed"]) for r in rows}  # finished arms of an earlier run with this recipe
    for seed in range(args.seeds):
        for arm in args.arms.split(","):
            if (arm == "full" and seed > 0) or (arm, seed) in done:
                continue
            if arm in dirs:
                picked = pd.read_parquet(milestone_path(dirs[arm], args.budget))
                idx = np.flatnonzero(np.isin(ids, picked["sample_id"].astype(str).to_numpy()))
            else:
                idx = subset(arm, y, groups, n, np.random.default_rng(1000 + seed))
            cfg = TrainConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                              lr=args.lr, max_steps=args.steps, augment="light", amp=args.amp,
                              device=str(dev), num_threads=args.threads, eval_every=0, patience=0, seed=seed)
            t0 = time.perf_counter()
            res = fit(np.ascontiguousarray(images[pool[idx]]), y[idx], None, None, cfg, progress=False)
            p, _ = predict(res.model, xv, device=dev)
            m = binary_metrics(yv, p)
            row = {"arm": arm, "seed": seed, "n": len(idx), "n_real": int((y[idx] == 0).sum()),
                   "groups": int(len(np.unique(groups[idx]))), "val_auc": m["auc"], "val_ap": m["ap"],
                   "val_balanced_acc": m["balanced_acc"], "train_s": res.wall_s,
                   "wall_s": time.perf_counter() - t0}
            rows.append(row)
            print(row, flush=True)
            write_json_atomic(out / f"{name}.json", {"args": vars(args), "rows": rows})  # resumable

    df = pd.DataFrame(rows)
    agg = df.groupby("arm", sort=False).agg(n=("n", "first"), n_real=("n_real", "mean"), groups=("groups", "mean"),
                                            val_auc=("val_auc", "mean"), val_auc_std=("val_auc", "std"),
                                            runs=("seed", "count"))
    mach = machine_summary(str(dev))
    write_json_atomic(out / f"{name}.json",
                      {"machine": mach, "args": vars(args), "pool": len(pool), "val": len(val), "rows": rows})
    lines = [
        "# Subset composition ablation (val split, DFDC dev crops)", "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, torch {mach['torch']} ({mach['torch_threads']} threads), "
        f"device {tag}. Recipe: {args.backbone} {args.image_size} px, batch {args.batch_size}, "
        f"{args.steps} steps, lr {args.lr}, light augment, amp {args.amp}; budget {args.budget:.0%} "
        f"of a {len(pool):,}-crop pool; scored on {len(val):,} val crops (held-out groups, not the test split).", "",
        "| arm | n | reals | groups | val AUC | std | runs |", "|---|---|---|---|---|---|---|",
    ]
    for arm, r in agg.iterrows():
        std = "–" if np.isnan(r.val_auc_std) else f"{r.val_auc_std:.3f}"
        lines.append(f"| {arm} | {r.n:.0f} | {r.n_real:.0f} | {r.groups:.0f} | {r.val_auc:.3f} | {std} | {r.runs:.0f} |")
    write_text_atomic(out / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
