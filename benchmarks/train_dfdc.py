"""Train a detector from scratch on the DFDC dev face crops and report held-out-group metrics.

Question answered: what test AUC / AP / EER / balanced accuracy does the training recipe reach on
real deepfakes within a fixed time, and how fast does it train (images/s) on this device?

    # CPU (2 cores, whole script ≤ 30 min including JPEG decoding):
    .venv/bin/python benchmarks/train_dfdc.py --device cpu
    # GPU (H100/H200, < 2 min including decoding; data from the pack built by scripts/pack_dfdc.py):
    python3 benchmarks/train_dfdc.py --device cuda --pack .gpu/dfdc_pack.npz
    # smoke (~3 min): --time-budget-min 3 --limit 4000

Split: by identity group (a FAKE's ``original`` source video), fixed seed: 72% train, 8% val
(early stopping / best checkpoint), 20% test. One crop per video, so frame = video level.
``--time-budget-min`` bounds the whole script: training gets what decoding left, minus a reserve
for the test pass, and its learning-rate schedule is compressed to end annealed on time.
Writes ``benchmarks/results/train_dfdc_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
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

#: Recipes per device type. CPU: a small ResNet at 64 px (what 2 cores can train in ~25 min);
#: GPU: the timed H200 recipe (ResNet-18, 128 px, batch 256, bf16, flips + shifts, 3000 steps).
RECIPES = {
    "cpu": dict(backbone="resnet10t", image_size=64, batch_size=64, steps=6000, lr=2e-3,
                augment="light", eval_every=300, time_budget_min=29.0, amp="auto"),
    "cuda": dict(backbone="resnet18", image_size=128, batch_size=256, steps=3000, lr=2e-3,
                 augment="light", eval_every=500, time_budget_min=10.0, amp="auto"),
}
FRACTIONS = (0.72, 0.08, 0.20)


def machine(device: str) -> dict:
    return machine_summary(device)


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if images.shape[1] == size:
        return images
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])


def load_dfdc(size: int, *, pack: str | None = None, data_dir: str | None = None, limit: int = 0,
              seed: int = 0) -> tuple[Manifest, np.ndarray]:
    """``(manifest, uint8 [N,size,size,3] RGB)`` of the DFDC dev crops.

    The one place that knows where the data lives: a pack (``scripts/pack_dfdc.py``, for machines
    without ../shared), an extracted folder, or the shared tarball (extracted once into the cache).
    """
    if pack:
        from edgedistal.data.pack import load_pack

        manifest, images = load_pack(pack)
        if limit and limit < len(manifest):
            keep = limit_groups(manifest, limit, seed)
            manifest, images = manifest.take(keep), images[keep]
        return manifest, _resize_all(images, size)
    from edgedistal.data.images import load_images
    from edgedistal.data.layouts import read_layout

    if data_dir is None:
        from edgedistal.data.archive import shared_dataset

        found = shared_dataset("dfdc-faces-dev")
        if found is None:
            raise EdgedistalError("dfdc-faces-dev.tar not found", "set EDGEDISTAL_SHARED, or pass --data or --pack")
        data_dir = str(found)
    manifest = read_layout(data_dir, "dfdc-faces").manifest
    if limit and limit < len(manifest):
        manifest = manifest.take(limit_groups(manifest, limit, seed))
    return manifest, load_images(manifest.paths, size, progress=True)


def limit_groups(manifest: Manifest, n: int, seed: int) -> np.ndarray:
    """Row indices of whole random groups totalling about ``n`` rows (for smoke runs)."""
    groups = manifest.df["group"].to_numpy()
    uniq = np.random.default_rng(seed).permutation(np.unique(groups))
    sizes = manifest.df.groupby("group").size()
    keep = set(uniq[: int(np.searchsorted(np.cumsum(sizes.loc[uniq].to_numpy()), n)) + 1])
    return np.flatnonzero(np.isin(groups, list(keep)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backbone")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--steps", type=int, help="max optimizer steps (the time budget may stop earlier)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--augment", choices=["none", "light", "standard"])
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--patience", type=int, default=0, help="early stop after N evals without gain (0: off)")
    ap.add_argument("--time-budget-min", type=float, help="whole script, decoding included")
    ap.add_argument("--amp", help="auto (bf16 only where the CPU has AVX-512 BF16 / AMX) | bf16 | fp16 | off")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use ~N images (whole groups) for smoke runs")
    ap.add_argument("--pack", help="packed crops (.npz from scripts/pack_dfdc.py)")
    ap.add_argument("--data", help="extracted dfdc-faces-dev folder (default: the shared tarball)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--save-checkpoint", help="also write the trained detector here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    from edgedistal.data.split import group_split
    from edgedistal.models.metrics import compute_metrics
    from edgedistal.models.train import TrainConfig, fit, predict, resolve_device

    device = resolve_device(args.device)
    recipe = dict(RECIPES["cuda" if device.type == "cuda" else "cpu"])
    for key in recipe:
        value = getattr(args, key, None)
        if value is not None:
            recipe[key] = value
    budget_s = recipe["time_budget_min"] * 60

    manifest, images = load_dfdc(recipe["image_size"], pack=args.pack, data_dir=args.data,
                                 limit=args.limit, seed=args.seed)
    t_data = time.perf_counter() - t0
    split = group_split(manifest, FRACTIONS, seed=args.split_seed).df["split"].to_numpy()
    y = manifest.labels
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    # contiguous per-split arrays (one copy; the device copy is made by fit)
    xs = {s: np.ascontiguousarray(images[np.sort(i)]) for s, i in idx.items()}
    idx = {s: np.sort(i) for s, i in idx.items()}

    reserve = max(30.0, 0.06 * budget_s)
    train_budget = budget_s - (time.perf_counter() - t0) - reserve
    if train_budget < 30:
        raise EdgedistalError(
            f"only {train_budget:.0f} s left for training after loading the data",
            "raise --time-budget-min (the image cache makes the next run's loading fast)",
        )
    cfg = TrainConfig(
        backbone=recipe["backbone"], image_size=recipe["image_size"], batch_size=recipe["batch_size"],
        lr=recipe["lr"], max_steps=recipe["steps"], eval_every=recipe["eval_every"], patience=args.patience,
        augment=recipe["augment"], amp=recipe["amp"], device=str(device), num_threads=args.threads,
        seed=args.seed, time_budget_s=train_budget,
    )
    res = fit(xs["train"], y[idx["train"]], xs["val"], y[idx["val"]], cfg,
              checkpoint=args.save_checkpoint, progress=True)
    t_pred = time.perf_counter()
    probs, _ = predict(res.model, xs["test"], device=device, batch_size=512)
    pred_ips = len(probs) / (time.perf_counter() - t_pred)
    test = compute_metrics(y[idx["test"]], probs)["frame"]
    wall = time.perf_counter() - t0

    dev_name = "cuda" if device.type == "cuda" else device.type
    out = {
        "benchmark": "train_dfdc",
        "machine": machine(str(device)),
        "device": str(device),
        "recipe": recipe,
        "train_config": {k: v for k, v in vars(cfg).items()},
        "data": {"source": args.pack or args.data or "shared:dfdc-faces-dev", "n": len(manifest),
                 "groups": int(manifest.df["group"].nunique()), "limit": args.limit,
                 **{f"n_{s}": len(i) for s, i in idx.items()},
                 "fake_share_test": float(y[idx["test"]].mean())},
        "test": test,
        "best_val_auc": res.best_val_auc,
        "best_step": res.best_step,
        "steps": res.steps,
        "epochs": round(res.epochs, 3),
        "stopped": res.stopped,
        "train_images_per_s": round(res.images_per_s, 1),
        "predict_images_per_s": round(pred_ips, 1),
        "data_load_s": round(t_data, 1),
        "train_wall_s": round(res.wall_s, 1),
        "wall_s": round(wall, 1),
        "history": res.history,
    }
    results = Path(args.results)
    stem = f"train_dfdc_{dev_name}" + ("_smoke" if args.limit else "")
    write_json_atomic(results / f"{stem}.json", out)
    write_text_atomic(results / f"{stem}.md", markdown(out))
    print(markdown(out))
    return out


def markdown(r: dict) -> str:
    t, m, rc = r["test"], r["machine"], r["recipe"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores)"
    lines = [
        "# Detector training on DFDC dev crops (from scratch)",
        "",
        f"Machine: {where}, torch {m['torch']}, python {m['python']}; device `{r['device']}`.",
        f"Recipe: {rc['backbone']} {rc['image_size']} px, batch {rc['batch_size']}, lr {rc['lr']}, "
        f"augment {rc['augment']}, amp {rc['amp']}, AdamW one-cycle, class-balanced loss, max {rc['steps']} steps, "
        f"budget {rc['time_budget_min']} min (whole script).",
        f"Data: {r['data']['n']:,} crops, {r['data']['groups']:,} groups; split by group "
        f"train {r['data']['n_train']:,} / val {r['data']['n_val']:,} / test {r['data']['n_test']:,} "
        f"(test {r['data']['fake_share_test']:.0%} fake).",
        "",
        "| test AUC | AP | EER | balanced acc | acc@0.5 | log loss | best val AUC | steps (epochs) | stopped | train img/s | train s | total s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {t['auc']:.4f} | {t['ap']:.4f} | {t['eer']:.4f} | {t['balanced_acc']:.4f} | {t['acc']:.4f} | "
        f"{t['log_loss']:.4f} | {r['best_val_auc'] if r['best_val_auc'] is None else round(r['best_val_auc'], 4)} | "
        f"{r['steps']} ({r['epochs']}) | {r['stopped']} | {r['train_images_per_s']} | {r['train_wall_s']} | {r['wall_s']} |",
        "",
        f"Data loading (decode + resize or cache read): {r['data_load_s']} s; test inference "
        f"{r['predict_images_per_s']} img/s. One crop per video: frame and video metrics coincide.",
    ]
    if r["data"]["limit"]:
        lines.append(f"\nSMOKE RUN on ~{r['data']['limit']} images: not a result.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        main()
    except EdgedistalError as exc:
        print(exc.format(), file=sys.stderr)
        sys.exit(2)
