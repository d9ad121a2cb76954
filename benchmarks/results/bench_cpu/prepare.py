"""Prepare the committed CPU bench: DFDC dev crops → manifest, a ~2-min CPU fit, ONNX export.

Usage: python benchmarks/results/bench_cpu/prepare.py WORK_DIR [--train N] [--test N] [--size PX]
Writes WORK_DIR/{manifest.parquet, bench_manifest.parquet, detector.pt, export/}; then run
`edgedistal bench` as shown in bench.md. Real data comes from ../shared (read-only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgedistal.data.archive import shared_dataset
from edgedistal.data.images import load_images
from edgedistal.data.layouts import read_layout
from edgedistal.data.split import group_split
from edgedistal.deploy.export import export_all
from edgedistal.models.registry import save_checkpoint
from edgedistal.models.train import TrainConfig, checkpoint_extra, fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    src = shared_dataset("dfdc-faces-dev")
    if src is None:
        raise SystemExit("dfdc-faces-dev.tar not found under ../shared/datasets")
    m = group_split(read_layout(src).manifest, seed=0)
    m.save(a.work / "manifest.parquet")
    rng = np.random.default_rng(0)

    def pick(name: str, n: int):
        part = m.split(name)
        return part.take(np.sort(rng.choice(len(part), size=min(n, len(part)), replace=False)))

    train, val, test = pick("train", a.train), pick("val", 300), pick("test", a.test)
    test.save(a.work / "bench_manifest.parquet")
    train.save(a.work / "train_manifest.parquet")  # int8 calibration uses train crops only
    ckpt = a.work / "detector.pt"
    if not ckpt.exists():
        cfg = TrainConfig(backbone="resnet18", image_size=a.size, batch_size=64, epochs=30,
                          time_budget_s=a.budget_s, num_threads=a.threads, device="cpu", patience=4)
        res = fit(load_images(train.paths, a.size), train.labels, load_images(val.paths, a.size),
                  val.labels, cfg, progress=False)
        save_checkpoint(ckpt, res.model, **checkpoint_extra(res, cfg), bench_note=(
            f"quick CPU fit: {len(train)} DFDC dev train crops at {a.size}px, budget {a.budget_s:g}s, "
            f"best val AUC {res.best_val_auc}, stopped: {res.stopped}"))
        print(f"fit: {res.steps} steps, {res.wall_s:.0f}s, best val AUC {res.best_val_auc}, {res.stopped}")
    export_all(ckpt, a.work / "export", precisions=("fp32", "int8"), calib_manifest=a.work / "train_manifest.parquet",
               calib_size=256)
    print(f"ready: {a.work}")


if __name__ == "__main__":
    main()
