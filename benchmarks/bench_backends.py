"""CPU backends side by side: PyTorch fp32 eager vs ONNX Runtime fp32 vs ONNX Runtime int8 (QDQ).

Same model (default resnet18, 128 px), same images, one run, so the ratios are comparable even
on a noisy shared machine (absolute numbers are not). With ``--checkpoint`` and a labelled
``--manifest`` it also reports frame AUC per precision (fp32 / fp16 / int8) against the labels.

    python benchmarks/bench_backends.py                       # untrained resnet18, ~2-4 min on 2 cores
    python benchmarks/bench_backends.py --quick               # smoke size
    python benchmarks/bench_backends.py --checkpoint ck.pt --manifest test.parquet --auc-images 2000

Writes benchmarks/results/bench_backends.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgedistal.deploy.export import export_detector, model_filename  # noqa: E402
from edgedistal.models.registry import Detector, DetectorConfig, load_checkpoint  # noqa: E402
from edgedistal.runtime.ort_backend import OrtBackend  # noqa: E402
from edgedistal.runtime.torch_backend import TorchBackend  # noqa: E402
from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"





def latency(backend, images: np.ndarray, batch: int, seconds: float, min_iters: int) -> dict:
    """Per-call latency (ms) at ``batch``; throughput = batch / mean latency."""
    x = np.ascontiguousarray(images[:batch])
    for _ in range(2):
        backend.infer(x)
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_iters or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {
        "batch": batch, "iters": len(ms), "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)), "images_per_s": float(batch * len(ms) / (ms.sum() / 1e3)),
    }


def auc_per_precision(export_dir: Path, manifest: str, n: int, batch: int) -> dict:
    from sklearn.metrics import roc_auc_score

    from edgedistal.data.images import load_images
    from edgedistal.data.manifest import Manifest

    m = Manifest.load(manifest)
    if len(m) > n:
        m = m.take(np.random.default_rng(0).choice(len(m), n, replace=False))
    side = json.loads((export_dir / "export.json").read_text())
    images = load_images(m.paths, int(side["config"]["image_size"]))
    out = {}
    for prec in ("fp32", "fp16", "int8"):
        be = OrtBackend(export_dir / model_filename(prec), prec, "cpu", batch)
        p, _ = be.infer(np.asarray(images))
        out[prec] = float(roc_auc_score(m.labels, p))
    out["max_auc_drop_vs_fp32"] = max(out["fp32"] - out["fp16"], out["fp32"] - out["int8"])
    out["n_images"] = len(m)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--checkpoint", default=None, help="trained checkpoint (else random init)")
    ap.add_argument("--manifest", default=None, help="labelled manifest: calibration + AUC")
    ap.add_argument("--auc-images", type=int, default=2000)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--seconds", type=float, default=6.0, help="timing window per cell")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="smoke size: 64 px, short windows")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_backends")
    args = ap.parse_args()
    if args.quick:
        args.size, args.seconds = 64, 0.5
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    if args.checkpoint:
        det, _ = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)
        det = Detector(DetectorConfig(backbone=args.backbone, image_size=args.size)).eval()
    size = det.config.image_size
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(batches), size, size, 3), np.uint8)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        export_dir = Path(tmp)
        side = export_detector(det, export_dir, ("fp32", "fp16", "int8"), args.manifest,
                               64 if args.quick else 256)
        backends = {
            "torch-fp32": TorchBackend(det, "fp32", "cpu", batch_size=max(batches)),
            "ort-fp32": OrtBackend(export_dir / model_filename("fp32"), "fp32", "cpu", max(batches), threads),
            "ort-int8": OrtBackend(export_dir / model_filename("int8"), "int8", "cpu", max(batches), threads),
        }
        rows = []
        for b in batches:
            for name, be in backends.items():
                r = latency(be, images, b, args.seconds, 5)
                rows.append({"backend": name, **r})
                print(f"{name:>11} batch {b:>3}: {r['images_per_s']:8.1f} img/s  "
                      f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms", flush=True)
        auc = auc_per_precision(export_dir, args.manifest, args.auc_images, 64) \
            if args.checkpoint and args.manifest else None
    base = {r["batch"]: r["images_per_s"] for r in rows if r["backend"] == "torch-fp32"}
    for r in rows:
        r["speedup_vs_torch_fp32"] = r["images_per_s"] / base[r["batch"]]
    import onnxruntime as ort

    result = {
        "machine": {"cpu": cpu_model(), "cores_used": threads, "os_cpu_count": os.cpu_count(),
                    "load_avg_at_end": os.getloadavg(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": ort.__version__},
        "model": {"backbone": det.config.backbone, "image_size": size,
                  "checkpoint": args.checkpoint or "random init (seed 0)"},
        "parity_vs_torch": {p: m["parity_vs_torch"] for p, m in side["models"].items()},
        "rows": rows, "auc": auc,
        "note": "ratios from one run; absolute numbers are noisy on a shared machine",
    }
    write_json_atomic(args.out.with_suffix(".json"), result)
    md = [f"# Backends on CPU: {det.config.backbone} {size}px",
          "", f"CPU: {result['machine']['cpu']}, {threads} threads, load avg at end "
          f"{result['machine']['load_avg_at_end'][0]:.1f}; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}. One run; ratios are what to compare.", "",
          "| backend | batch | images/s | p50 ms | p99 ms | × torch fp32 |", "|---|---:|---:|---:|---:|---:|"]
    md += [f"| {r['backend']} | {r['batch']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | "
           f"{r['p99_ms']:.2f} | {r['speedup_vs_torch_fp32']:.2f} |" for r in rows]
    if auc:
        md += ["", f"AUC on {auc['n_images']} images: fp32 {auc['fp32']:.4f}, fp16 {auc['fp16']:.4f}, "
               f"int8 {auc['int8']:.4f} (max drop {auc['max_auc_drop_vs_fp32']:.4f})"]
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
