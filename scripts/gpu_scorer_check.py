"""GPU check of the batch scorer: does streaming a host-memory pool keep the GPU busy?

Measures, for a resnet18 128 px detector (random init: throughput only):
  * model-only: the deploy graph on a device-resident uint8 batch (eager and CUDA graph), fp16/fp32;
  * scorer: ``score_images`` over a uint8 pool in host memory through ``TorchBackend``
    (pinned double-buffered uploads), fp32 / fp16, with and without CUDA graphs.
Goal: best fp16 scorer ≥ 85% of the best fp16 model-only throughput. Writes one JSON.

    python scripts/gpu_scorer_check.py --out $OUT/scorer.json          # GPU, < 90 s
    python scripts/gpu_scorer_check.py --smoke --out /tmp/scorer.json  # CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgedistal.acquire.scorer import score_images  # noqa: E402
from edgedistal.models.registry import DeployModel, Detector, DetectorConfig  # noqa: E402
from edgedistal.runtime.torch_backend import TorchBackend  # noqa: E402

GOAL = 0.85


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(det: Detector, device: torch.device, precision: str, batch: int, graphs: bool,
               seconds: float) -> float:
    """images/s of the deploy graph on device-resident input (no host traffic)."""
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
    model = DeployModel(copy.deepcopy(det)).eval().to(device, dtype=dtype)
    model = model.to(memory_format=torch.channels_last)
    s = det.config.image_size
    x = torch.randint(0, 256, (batch, s, s, 3), dtype=torch.uint8, device=device)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        sync(device)
        step = model
        if graphs:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                model(x)
            step = lambda _x: g.replay()  # noqa: E731
        iters, t0 = 0, time.perf_counter()
        while True:
            for _ in range(5):
                step(x)
            iters += 5
            sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    return iters * batch / (time.perf_counter() - t0)


def scorer(det: Detector, device: torch.device, precision: str, micro: int, chunk: int,
           graphs: bool, pool: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """Best images/s of ``score_images`` over the host pool; also returns the first 512 probs."""
    best, probs = 0.0, None
    with TorchBackend(det, precision, str(device), batch_size=micro, cuda_graphs=graphs) as be:
        score_images(pool[: 2 * micro + 3], be, batch_size=chunk, progress=False)  # warm-up/capture
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            p, _ = score_images(pool, be, batch_size=chunk, progress=False)
            best = max(best, len(pool) / (time.perf_counter() - t0))
            probs = p[:512]
    assert probs is not None
    return best, probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; runs on CPU")
    ap.add_argument("--n", type=int, default=20000, help="pool size")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--micro", type=int, default=256, help="backend micro-batch")
    ap.add_argument("--chunk", type=int, default=4096, help="images per backend.infer call")
    ap.add_argument("--seconds", type=float, default=2.0, help="model-only timing window")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    t_start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:
        args.n, args.size, args.micro, args.chunk, args.seconds, args.repeats = 96, 64, 16, 48, 0.3, 1
        torch.set_num_threads(2)
    torch.manual_seed(0)
    det = Detector(DetectorConfig(backbone="resnet18", image_size=args.size)).eval()
    base = np.random.default_rng(0).integers(0, 256, (min(512, args.n), args.size, args.size, 3), np.uint8)
    pool = np.ascontiguousarray(np.resize(base, (args.n, args.size, args.size, 3)))  # host memory
    precisions = ["fp32", "fp16"] if device.type == "cuda" else ["fp32"]
    graph_modes = [False, True] if device.type == "cuda" else [False]
    res: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "python": platform.python_version(), "smoke": args.smoke,
        "pool": {"n": args.n, "size": args.size, "bytes": int(pool.nbytes)},
        "micro_batch": args.micro, "chunk": args.chunk, "model_only": {}, "scorer": {}, "goal": GOAL,
    }
    for prec in precisions:
        for g in graph_modes:
            key = f"{prec}{'-graph' if g else ''}"
            res["model_only"][key] = round(model_only(det, device, prec, args.micro, g, args.seconds), 1)
            ips, probs = scorer(det, device, prec, args.micro, args.chunk, g, pool, args.repeats)
            res["scorer"][key] = round(ips, 1)
            res.setdefault("_probs", {})[key] = probs
            print(f"{key:>11}: model-only {res['model_only'][key]:>10,.0f} img/s  "
                  f"scorer {ips:>10,.0f} img/s  ({ips / res['model_only'][key]:.1%})", flush=True)
    probs = res.pop("_probs")
    ref = probs["fp32"]
    cpu_p, _ = TorchBackend(det, "fp32", "cpu", batch_size=64).infer(pool[:64])
    res["max_abs_dprob_fp32_vs_cpu"] = float(np.abs(ref[:64] - cpu_p).max())
    res["max_abs_dprob_vs_fp32"] = {k: float(np.abs(v - ref).max()) for k, v in probs.items()}
    top = "fp16" if "fp16" in precisions else "fp32"
    best_model = max(v for k, v in res["model_only"].items() if k.startswith(top))
    best_scorer = max(v for k, v in res["scorer"].items() if k.startswith(top))
    res["ratio"] = {k: round(res["scorer"][k] / res["model_only"][k], 3) for k in res["scorer"]}
    res["best_scorer_over_best_model_only"] = round(best_scorer / best_model, 3)
    res["pass"] = bool(best_scorer / best_model >= GOAL)
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("device", "ratio", "best_scorer_over_best_model_only",
                                          "pass", "seconds")}))


if __name__ == "__main__":
    main()
