"""GPU check for `edgedistal bench`: torch-CUDA fp32/fp16 (+ ORT CPU fp32) on a generated set.

Random-init resnet18 at 128 px, a generated labelled manifest, then `edgedistal bench`; writes
``$OUT/bench_gpu/{bench.json,bench.md,latency.png,accuracy.png}`` and fails loudly if the CUDA
rows are missing. Under 60 s on an H100. ``--smoke`` runs the same path on the CPU in seconds.

    python scripts/gpu_bench_check.py            # on the GPU machine ($OUT set by the runner)
    python scripts/gpu_bench_check.py --smoke    # anywhere
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def build_inputs(work: Path, size: int, n_groups: int, export: bool) -> tuple[Path, Path, Path | None]:
    """Generated manifest (all rows 'test'), random-init resnet18 checkpoint, optional ONNX fp32."""
    import pandas as pd
    import torch

    from edgedistal.data.manifest import Manifest
    from edgedistal.data.synth import SynthConfig, write_dataset
    from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint

    data = work / "synth"
    meta = pd.read_csv(write_dataset(data, SynthConfig(n_groups=n_groups, frames_per_video=4, size=size, seed=1)))
    manifest = Manifest.from_records([
        {"sample_id": f"s{i}", "path": str(data / r.path), "label": int(r.label == "FAKE"),
         "group": str(r.group), "video": str(r.video), "frame": int(r.frame), "source": "synth",
         "method": str(r.method) if isinstance(r.method, str) else "", "split": "test"}
        for i, r in enumerate(meta.itertuples())
    ])
    mpath = manifest.save(work / "manifest.parquet")
    torch.manual_seed(0)
    ckpt = save_checkpoint(work / "detector.pt", Detector(DetectorConfig(backbone="resnet18", image_size=size)))
    onnx_dir = None
    if export:
        from edgedistal.deploy.export import export_all

        onnx_dir = work / "export"
        export_all(ckpt, onnx_dir, precisions=("fp32",), calib_size=16)
    return mpath, ckpt, onnx_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: check the path works")
    ap.add_argument("--out", type=Path, default=None, help="default: $OUT/bench_gpu (or a temp dir)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import torch

    from edgedistal.bench.report import load_report
    from edgedistal.cli import main as cli_main

    base = Path(a.out) if a.out else Path(os.environ.get("OUT") or tempfile.mkdtemp()) / "bench_gpu"
    cuda = torch.cuda.is_available() and not a.smoke
    if not a.smoke and not cuda:
        print("no CUDA device: run with --smoke on CPU", file=sys.stderr)
        return 2
    if a.smoke:
        torch.set_num_threads(1)
    size = 64 if a.smoke else 128
    with tempfile.TemporaryDirectory() as tmp:
        mpath, ckpt, onnx_dir = build_inputs(Path(tmp), size, n_groups=4 if a.smoke else 16, export=not a.smoke)
        print(f"inputs ready in {time.perf_counter() - t0:.1f}s")
        args = ["bench", "--manifest", str(mpath), "--checkpoint", str(ckpt), "--out", str(base),
                "--split", "test", "--limit", "0"]
        if a.smoke:
            args += ["--backends", "torch", "--precisions", "fp32,fp16", "--batch", "1,4",
                     "--warmup", "1", "--iters", "5"]
        else:
            args += ["--onnx-dir", str(onnx_dir), "--backends", "torch-cuda,onnxruntime",
                     "--precisions", "fp32,fp16", "--batch", "1,8,32", "--warmup", "20", "--iters", "200",
                     "--repeat", "2"]
        try:
            cli_main(args)
        except SystemExit as exc:
            if exc.code:
                return int(exc.code)
    report = load_report(base / "bench.json")
    rows = [r for r in report["rows"] if not r["skipped_reason"]]
    want = "torch" if a.smoke else "torch-cuda"
    got = {(r["backend"], r["precision"]) for r in rows}
    gpu = report["environment"].get("gpu") or {}
    print(f"card: {gpu.get('name', 'none')}; measured rows: {sorted(got)}; total {time.perf_counter() - t0:.1f}s")
    missing = [p for p in (("fp32",) if a.smoke else ("fp32", "fp16")) if (want, p) not in got]
    if missing:
        print(f"FAIL: no {want} rows for {missing}", file=sys.stderr)
        return 1
    print(f"OK: {base}/bench.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
