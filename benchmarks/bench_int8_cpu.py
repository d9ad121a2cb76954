"""Does int8 pay on CPU? ORT int8 (cpu target, U8S8) vs PyTorch fp32 vs ORT fp32, in one run.

For each DFDC-trained checkpoint: export fp32 ONNX, quantise int8 for the ``cpu`` target
(U8S8 QDQ, per-channel weights, calibration method chosen by held-out drift) and, for
comparison, the ``tensorrt`` target (S8S8, what the export wrote before); time every backend at
batch 32 and 1 with the same thread count, interleaving the backends in rounds so machine drift
hits them alike; score the DFDC test crops (group split, same seed as ``train_dfdc.py``) for
AUC; count the integer vs float kernels in ORT's optimised graph; record the CPU flags.

Targets from issue #15, checked in the report: ORT int8 ≥ 2× PyTorch fp32 and ≥ 1.6× ORT fp32
at batch 32 and 1, |ΔAUC| ≤ 0.005 vs fp32 — on a CPU with AVX-512 VNNI (other CPUs get their own
rows; the flags and kernel counts say why they differ).

    # checkpoints from benchmarks/train_dfdc.py --save-checkpoint (ResNet-18 128 px, ResNet-10t 64 px)
    python benchmarks/bench_int8_cpu.py --checkpoint runs/dfdc_r18_128.pt --checkpoint runs/dfdc_r10t_64.pt
    python benchmarks/bench_int8_cpu.py --quick      # smoke: tiny random model, generated images

Writes benchmarks/results/bench_int8_cpu.{json,md} (``--out`` to change).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"int8_vs_torch_fp32": 2.0, "int8_vs_ort_fp32": 1.6, "max_abs_delta_auc": 0.005}


def dfdc_split(size: int, args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(images, labels) per split of the DFDC dev crops, split exactly as train_dfdc.py does."""
    from benchmarks.train_dfdc import FRACTIONS, load_dfdc
    from edgedistal.data.split import group_split

    manifest, images = load_dfdc(size, pack=args.pack, data_dir=args.data, limit=args.limit, seed=0)
    split = group_split(manifest, FRACTIONS, seed=args.split_seed).df["split"].to_numpy()
    xs = {s: np.ascontiguousarray(images[np.flatnonzero(split == s)]) for s in ("train", "test")}
    ys = {s: manifest.labels[np.flatnonzero(split == s)] for s in ("train", "test")}
    return xs, ys


def generated_split(size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A tiny generated stand-in for --quick (numbers mean nothing; the plumbing is tested)."""
    from edgedistal.data.synth import SynthConfig, generate

    imgs, meta = generate(SynthConfig(n_groups=4, frames_per_video=4, size=size, seed=1))
    x = np.ascontiguousarray(imgs[:, :, :, ::-1])
    y = meta["label"].to_numpy().astype(int)
    return {"train": x[::2], "test": x[1::2]}, {"train": y[::2], "test": y[1::2]}


def calibration_set(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` train crops stratified by label (as export.calibration_images does for a manifest)."""
    rng = np.random.default_rng(seed)
    idx: list[int] = []
    for lab in np.unique(y):
        pool = np.flatnonzero(y == lab)
        k = min(len(pool), max(1, round(n * len(pool) / len(y))))
        idx += rng.choice(pool, size=k, replace=False).tolist()
    return np.ascontiguousarray(x[np.sort(idx)[:n]])


def timed_rounds(backends: dict[str, Any], x: np.ndarray, seconds: float, rounds: int,
                 warmup: int) -> dict[str, dict[str, Any]]:
    """Per backend: samples pooled over ``rounds`` interleaved windows of ``seconds/rounds``."""
    from edgedistal.bench.run import summarize, time_calls

    samples: dict[str, list[float]] = {k: [] for k in backends}
    for r in range(rounds):
        for name, be in backends.items():
            s = time_calls(lambda be=be: be.infer(x), warmup if r == 0 else 1, 1,
                           min_time_s=seconds / rounds, min_iters=5)
            samples[name] += s.tolist()
    out = {}
    for name, s in samples.items():
        lat = summarize(s)
        out[name] = {"latency_ms": lat, "images_per_s": len(x) / (lat["mean"] / 1e3)}
    return out


def bench_checkpoint(ckpt: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one model: export, quantise, time, score, count kernels."""
    import torch
    from sklearn.metrics import roc_auc_score

    from edgedistal.bench.run import predict_all
    from edgedistal.deploy.export import export_onnx
    from edgedistal.deploy.int8 import quantize_for_target
    from edgedistal.models.registry import Detector, DetectorConfig, load_checkpoint
    from edgedistal.runtime.artifacts import detector_identity, stamp_onnx
    from edgedistal.runtime.ort_backend import OrtBackend
    from edgedistal.runtime.ort_graph import optimised_graph_counts
    from edgedistal.runtime.torch_backend import TorchBackend

    if ckpt:
        det, _ = load_checkpoint(ckpt)
    else:
        torch.manual_seed(0)
        det = Detector(DetectorConfig(backbone="resnet10t", image_size=32)).eval()
    size = det.config.image_size
    xs, ys = generated_split(size) if args.quick else dfdc_split(size, args)
    test_x, test_y = xs["test"], ys["test"]
    if args.auc_images and len(test_x) > args.auc_images:
        keep = np.sort(np.random.default_rng(0).choice(len(test_x), args.auc_images, replace=False))
        test_x, test_y = test_x[keep], test_y[keep]
    calib = calibration_set(xs["train"], ys["train"], args.calib_size)
    batches = [int(b) for b in args.batches.split(",")]
    result: dict[str, Any] = {"checkpoint": ckpt or "random init (quick)", "backbone": det.config.backbone,
                              "image_size": size, "n_test": len(test_x), "n_calibration": len(calib),
                              "calibration": "stratified sample of the DFDC train split" if not args.quick
                              else "generated images (quick)",
                              "test_set": "DFDC test crops (group split)" if not args.quick
                              else "generated images (quick; numbers mean nothing)"}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        fp32 = export_onnx(det, Path(tmp) / "model_fp32.onnx")
        ident = detector_identity(det)
        stamp_onnx(fp32, ident, precision="fp32")
        models = {"ort-fp32": fp32}
        quant: dict[str, Any] = {}
        for target in ("cpu", "tensorrt") if args.tensorrt_target else ("cpu",):
            path = Path(tmp) / f"model_int8_{target}.onnx"
            quant[target] = quantize_for_target(fp32, path, calib, target)
            models[f"ort-int8-{target}"] = path
        result["quantisation"] = quant
        result["kernels"] = {k: {kk: vv for kk, vv in optimised_graph_counts(p, args.threads).items()
                                 if kk != "source"} for k, p in models.items()}
        backends: dict[str, Any] = {"torch-fp32": TorchBackend(det, "fp32", "cpu", batch_size=max(batches))}
        for name, path in models.items():
            backends[name] = OrtBackend(path, name.split("-")[1], "cpu", max(batches), args.threads)
        probs = {name: predict_all(be, test_x, 64) for name, be in backends.items()}
        both = len(np.unique(test_y)) == 2
        auc = {name: float(roc_auc_score(test_y, p)) if both else None for name, p in probs.items()}
        result["auc"] = auc
        result["max_abs_dprob_vs_ort_fp32"] = {n: float(np.max(np.abs(p - probs["ort-fp32"]))) for n, p in probs.items()}
        rows = []
        for b in batches:
            x = np.ascontiguousarray(test_x[np.arange(b) % len(test_x)])
            timed = timed_rounds(backends, x, args.seconds, args.rounds, args.warmup)
            for name, t in timed.items():
                rows.append({"batch": b, "backend": name, **t,
                             "x_torch_fp32": t["images_per_s"] / timed["torch-fp32"]["images_per_s"],
                             "x_ort_fp32": t["images_per_s"] / timed["ort-fp32"]["images_per_s"]})
                print(f"{det.config.backbone} {size}px b={b:<3} {name:<16} {t['images_per_s']:9.1f} img/s "
                      f"p50 {t['latency_ms']['p50']:.2f} ms", flush=True)
        for be in backends.values():
            be.close()
    result["rows"] = rows
    result["verdict"] = verdict(result)
    return result


def verdict(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets for the cpu-target int8 model, per batch, pass/fail."""
    auc = res["auc"]
    d_auc = (abs(auc["ort-int8-cpu"] - auc["ort-fp32"]) if auc.get("ort-fp32") is not None else None)
    per_batch = {}
    for r in res["rows"]:
        if r["backend"] == "ort-int8-cpu":
            per_batch[r["batch"]] = {
                "x_torch_fp32": round(r["x_torch_fp32"], 3), "x_ort_fp32": round(r["x_ort_fp32"], 3),
                "pass_torch": r["x_torch_fp32"] >= TARGETS["int8_vs_torch_fp32"],
                "pass_ort": r["x_ort_fp32"] >= TARGETS["int8_vs_ort_fp32"],
            }
    return {"targets": TARGETS, "abs_delta_auc_vs_ort_fp32": d_auc,
            "pass_auc": d_auc is not None and d_auc <= TARGETS["max_abs_delta_auc"], "per_batch": per_batch}


def markdown(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    lines = ["# int8 on CPU: ORT int8 (cpu target) vs PyTorch fp32 vs ORT fp32", "",
             f"CPU: {env['cpu_model']}; flags: {', '.join(env['cpu_flags']) or 'none recorded'} "
             f"(int8 dot product: {env['int8_dot_product']}); threads {doc['config']['threads']} "
             f"(process pinned to {doc['config']['pinned_cpus']}); load avg start/end "
             f"{env.get('loadavg_start')} / {env.get('loadavg_end')}; onnxruntime "
             f"{env['versions'].get('onnxruntime')}, torch {env['versions'].get('torch')}.",
             f"One run; backends interleaved in {doc['config']['rounds']} rounds per batch, "
             f"{doc['config']['seconds']} s per backend and batch.", ""]
    for m in doc["models"]:
        v = m["verdict"]
        lines += [f"## {m['backbone']} {m['image_size']} px — `{m['checkpoint']}`", "",
                  "| batch | backend | img/s | p50 ms | p99 ms | × torch fp32 | × ORT fp32 |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['batch']} | {r['backend']} | {r['images_per_s']:.1f} | {r['latency_ms']['p50']:.2f} "
                  f"| {r['latency_ms']['p99']:.2f} | {r['x_torch_fp32']:.2f} | {r['x_ort_fp32']:.2f} |"
                  for r in m["rows"]]
        auc = m["auc"]
        lines += ["", f"AUC on {m['n_test']} {m['test_set']}: " + ", ".join(
            f"{k} {v_:.4f}" if v_ is not None else f"{k} –" for k, v_ in auc.items()),
            f"|ΔAUC| int8 (cpu) vs ORT fp32: {_f(v['abs_delta_auc_vs_ort_fp32'])} "
            f"(target ≤ {TARGETS['max_abs_delta_auc']}: {'PASS' if v['pass_auc'] else 'FAIL'})", ""]
        for b, pb in sorted(v["per_batch"].items()):
            lines.append(f"- batch {b}: int8 {pb['x_torch_fp32']:.2f}× torch fp32 (target ≥ 2: "
                         f"{'PASS' if pb['pass_torch'] else 'FAIL'}), {pb['x_ort_fp32']:.2f}× ORT fp32 "
                         f"(target ≥ 1.6: {'PASS' if pb['pass_ort'] else 'FAIL'})")
        lines += ["", "Kernels in ORT's optimised graph (integer / float compute / Q-DQ left):", ""]
        lines += [f"- {k}: {c['integer_nodes']} / {c['float_compute_nodes']} / {c['qdq_nodes']}"
                  for k, c in m["kernels"].items()]
        q = m["quantisation"]["cpu"]
        lines += ["", f"int8 cpu target: {q['activation']}×{q['weight']} {q['format']}, per-channel, "
                  f"calibration {q['method']} chosen by held-out drift {q.get('heldout_drift')}; "
                  f"calibrated on {m['calibration']} ({m['n_calibration']} crops).", ""]
    return "\n".join(lines) + "\n"


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", default=[], help="DFDC-trained checkpoint (repeatable)")
    ap.add_argument("--pack", default=None, help="DFDC pack from scripts/pack_dfdc.py")
    ap.add_argument("--data", default=None, help="extracted dfdc-faces-dev folder (default: ../shared tar)")
    ap.add_argument("--limit", type=int, default=0, help="at most ~N crops (whole groups; 0: all)")
    ap.add_argument("--split-seed", type=int, default=0, help="group split seed (train_dfdc.py's default)")
    ap.add_argument("--auc-images", type=int, default=0, help="score at most N test crops (0: all)")
    ap.add_argument("--calib-size", type=int, default=256)
    ap.add_argument("--batches", default="32,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=9.0, help="timing per backend and batch")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per batch")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-tensorrt-target", dest="tensorrt_target", action="store_false",
                    help="skip the S8S8 (tensorrt target) comparison row")
    ap.add_argument("--quick", action="store_true", help="smoke: tiny random model on generated images")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_int8_cpu")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.warmup, args.calib_size = 0.2, 1, 1, 16
    if not args.checkpoint and not args.quick:
        ap.error("pass --checkpoint (a DFDC-trained detector) or --quick")

    from edgedistal.bench.env import capture_environment, finish_environment
    from edgedistal.bench.run import limit_threads, steady_allocator

    pinned = limit_threads(args.threads)
    env = capture_environment()
    env["allocator"] = steady_allocator()
    models = [bench_checkpoint(c, args) for c in (args.checkpoint or [None])]
    doc = {"benchmark": "bench_int8_cpu", "environment": finish_environment(env),
           "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"pinned_cpus": pinned},
           "models": models}
    write_json_atomic(args.out.with_suffix(".json"), doc)
    write_text_atomic(args.out.with_suffix(".md"), markdown(doc))
    print(f"wrote {args.out.with_suffix('.json')} and .md")
    return doc


if __name__ == "__main__":
    main()
