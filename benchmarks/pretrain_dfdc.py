"""Embedder pretraining on the DFDC dev crops (issue 24): SimCLR on the train pool within a wall
budget, then frozen linear-probe val AUC against a random-init network, then the embeddings of
every row (train/val/test) for the evaluation's screening.

    # CPU, the 2 cores, 30 min of pretraining (resumable: re-run the same command to continue)
    .venv/bin/python benchmarks/pretrain_dfdc.py --device cpu --threads 2 --budget-min 30
    # ~1 min smoke on a tiny slice
    .venv/bin/python benchmarks/pretrain_dfdc.py --quick
    # GPU with the packed crops (scripts/pack_dfdc.py)
    python3 benchmarks/pretrain_dfdc.py --device cuda --pack .gpu/dfdc_pack.npz --budget-min 4 \\
        --backbone resnet18 --image-size 128 --batch-size 256

Writes ``--results``/pretrain_dfdc[_quick].{json,md} (machine, command, quality, diagnostics);
the working files (embedder.pt, its report, the state while running, scores/ with
scores.parquet + embeddings.npy of all rows, as `edgedistal score` writes them) stay under
``--work``. Labels are read only by the diagnostics, after training.
"""

from __future__ import annotations

import argparse
import shlex
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


def slice_groups(manifest: Manifest, per_split: dict[str, int], seed: int) -> Manifest:
    """Whole groups of each split (seeded order) up to ``per_split[split]`` rows (the quick slice)."""
    df = manifest.df
    keep = np.zeros(len(df), bool)
    rng = np.random.default_rng(seed)
    for split, cap in per_split.items():
        part = df[df["split"] == split]
        sizes = part.groupby("group").size()
        total = 0
        for g in sizes.index.to_numpy()[rng.permutation(len(sizes))]:
            if total + sizes[g] > cap:
                continue
            keep |= ((df["split"] == split) & (df["group"] == g)).to_numpy()
            total += int(sizes[g])
    return manifest.where(keep)


def score_all(embedder_path: Path, manifest: Manifest, out: Path, device: str) -> dict:
    """Embeddings of every row through the torch backend and the `score` scorer."""
    from edgedistal.acquire.scorer import SUMMARY_FILE, score_manifest
    from edgedistal.models.embedder import load_embedder
    from edgedistal.runtime.torch_backend import TorchBackend
    from edgedistal.utils.io import read_json

    if (out / SUMMARY_FILE).exists():  # resumable: scored already
        return read_json(out / SUMMARY_FILE)
    model, _ = load_embedder(embedder_path)
    with TorchBackend(model, "fp32", device=device, batch_size=256) as backend:
        res = score_manifest(manifest, backend, out, batch_size=256, progress=True)
    return {"n": len(manifest), "images_per_s": round(res.images_per_s, 1), "embedding_dim": int(res.embeddings.shape[1])}


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def render(rec: dict) -> str:
    s, q, d = rec["summary"], rec["quality"], rec.get("diagnostics") or {}
    c = rec["config"]
    m = rec["machine"]
    lines = [
        f"# Embedder pretraining on DFDC dev{' (quick slice)' if rec['quick'] else ''}", "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} CPUs (load {m.get('load_avg_1min', '?')}), "
        f"{m.get('gpu', m.get('gpu_name', 'no GPU'))}; device {s['device']} ({s['precision']}); torch {m.get('torch', '?')}.", "",
        f"Command: `{rec['command']}`", "",
        f"SimCLR, {c['backbone']} at {c['image_size']} px, batch {c['batch_size']} (2 views), temperature "
        f"{c['temperature']}: {s['steps']} steps in {s['wall_s'] / 60:.1f} min on {s['n_images']:,} train images "
        f"({s['images_per_s']:.0f} img/s), stopped: {s['stopped']}.", "",
        "| | value |", "|---|---|",
        f"| NT-Xent loss first → last | {rec['history'][0]['loss']:.3f} → {rec['history'][-1]['loss']:.3f} |"
        if rec["history"] else "| loss | – |",
        f"| effective rank / dim | {q['effective_rank']:.1f} / {q['embedding_dim']} |",
        f"| std per dim (uniform sphere {q['std_uniform_reference']:.4f}) | {q['std_per_dim']:.4f} |",
        f"| alignment ↓ / uniformity ↓ | {q['alignment']:.3f} / {q['uniformity']:.3f} |",
    ]
    if d:
        lines += ["", f"Diagnostics (labels read after training only; {d['n_train']:,} train, {d['n_val']:,} val rows, "
                  "frozen features):", "",
                  "| space | linear-probe val AUC | kNN val AUC | kNN label purity | same-group top-5 |",
                  "|---|---|---|---|---|"]
        for name in ("embedder", "random_init"):
            r = d[name]
            f = _fmt
            lines.append(f"| {name} | {f(r.get('linear_probe_val_auc'))} | {f(r.get('knn_val_auc'))} | "
                         f"{f(r['knn_label_purity'])} | {f(r['same_group_top5'])} |")
        gain = d.get("linear_probe_gain")
        lines += ["", f"**Linear-probe gain over random init: {'–' if gain is None else f'{gain:+.4f}'}** "
                  "(issue 24 expects ≥ +0.04 on the full run)."]
    lines += ["", f"Embeddings of all {rec['scores']['n']:,} rows: `{rec['scores_dir']}` "
              "(scores.parquet + embeddings.npy; `distill --scores` reads it)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pack", default=None, help="Packed crops (.gpu/dfdc_pack.npz) instead of ../shared.")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--backbone", default="resnet10t")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--budget-min", type=float, default=30.0, help="Wall budget of the pretraining itself.")
    ap.add_argument("--steps", type=int, default=100_000, help="Schedule length; the budget usually ends it first.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="A tiny slice, 32 px, ~1 min: a smoke run.")
    ap.add_argument("--work", default=None, help="Working folder (default runs/pretrain_dfdc[_quick]).")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(__file__).relative_to(ROOT)), *(argv or sys.argv[1:])])
    tag = "pretrain_dfdc_quick" if args.quick else "pretrain_dfdc"
    work = Path(args.work or ROOT / "runs" / tag)
    args.work = str(work)
    if args.quick:
        args.image_size, args.batch_size, args.budget_min, args.steps = 32, 32, 0.4, 40
        args.threads = args.threads or 1
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from edgedistal.models.pretrain import PretrainConfig
    from edgedistal.pipeline.pretrain import EMBEDDER_FILE, diagnostics, pretrain_on_manifest

    t0 = time.perf_counter()
    try:
        manifest = load_manifest(args)
        if args.quick:
            manifest = slice_groups(manifest, {"train": 600, "val": 200, "test": 200}, args.seed)
        work.mkdir(parents=True, exist_ok=True)
        manifest.save(work / "manifest.parquet")  # what distill/evaluate read next (the GPU script)
        cfg = PretrainConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                             lr=args.lr, temperature=args.temperature, max_steps=args.steps, seed=args.seed,
                             device=args.device, num_threads=args.threads, time_budget_s=args.budget_min * 60)
        emb_dir = work / "embedder"
        if (emb_dir / EMBEDDER_FILE).exists() and (emb_dir / "report.json").exists():
            from edgedistal.utils.io import read_json

            report = read_json(emb_dir / "report.json")  # finished: reuse (delete --work to redo)
        else:
            report = pretrain_on_manifest(manifest, cfg, emb_dir, resume=True, diagnose=False)
            from edgedistal.models.embedder import load_embedder
            from edgedistal.pipeline.pretrain import REPORT_JSON, REPORT_MD, render_report

            model, _ = load_embedder(emb_dir / EMBEDDER_FILE)
            # diagnostics on the whole train pool and val split (not the 4k/2k default sample)
            from edgedistal.data.images import load_images

            train = manifest.split("train")
            report["diagnostics"] = diagnostics(model, cfg, train, manifest.split("val"),
                                                load_images(train.paths, cfg.image_size), max_train=len(train),
                                                max_val=10**9, device="cpu" if args.device == "cpu" else "auto")
            write_json_atomic(emb_dir / REPORT_JSON, report)
            write_text_atomic(emb_dir / REPORT_MD, render_report(report))
        scores_dir = work / "scores"
        scores = score_all(emb_dir / EMBEDDER_FILE, manifest, scores_dir, args.device)
    except EdgedistalError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    rec = {**{k: report[k] for k in ("summary", "config", "history", "quality")},
           "diagnostics": report.get("diagnostics"), "quick": args.quick, "command": command,
           "machine": machine_summary(report["summary"]["device"]), "scores": scores, "scores_dir": str(scores_dir),
           "embedder": str(work / "embedder" / EMBEDDER_FILE), "script_wall_s": round(time.perf_counter() - t0, 1)}
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{tag}.json", rec)
    write_text_atomic(out / f"{tag}.md", render(rec))
    print(render(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
