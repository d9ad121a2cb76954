"""GPU check of acquisition at scale: k-center greedy, BADGE and hybrid on 1M × 512.

Targets (one H100/H200): k-center 10k picks ≤ 30 s; the whole script < 90 s. Also checks that
the chunked GPU k-center makes the same picks as the CPU path on a small fp32 problem.

    python scripts/gpu_selection_check.py --out $OUT/selection.json
    python scripts/gpu_selection_check.py --smoke --out /tmp/selection.json   # CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgedistal.acquire.kernels import gradient_embeddings, k_center_greedy, kmeans_pp  # noqa: E402
from edgedistal.acquire.registry import get_strategy  # noqa: E402
from edgedistal.acquire.state import SelectionState  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(dev: torch.device, fn):
    sync(dev)
    t = time.perf_counter()
    out = fn()
    sync(dev)
    return out, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--badge-k", type=int, default=10_000)
    ap.add_argument("--labelled", type=int, default=10_000)
    ap.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (20k × 64, 200 picks)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.smoke:
        dev = torch.device("cpu")
        args.n, args.d, args.k, args.badge_k, args.labelled, args.dtype = 20_000, 64, 200, 200, 100, "fp32"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("no CUDA device; use --smoke for the CPU check", file=sys.stderr)
            return 2
        dev = torch.device("cuda")  # TF32 stays off: the fp32 parity check below needs full fp32
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    g = torch.Generator(device=dev).manual_seed(args.seed)
    result: dict = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (smoke)",
        "torch": torch.__version__,
        "n": args.n, "d": args.d, "k": args.k, "badge_k": args.badge_k, "labelled": args.labelled,
        "dtype": args.dtype,
    }

    # 1) parity: chunked k-center on the device == CPU path (fp32, small)
    rng = np.random.default_rng(args.seed)
    small = rng.normal(size=(20_000, 64)).astype(np.float32)
    cpu_p = k_center_greedy(torch.from_numpy(small), 100, torch.from_numpy(small[:50]))
    dev_p = k_center_greedy(torch.from_numpy(small).to(dev), 100, torch.from_numpy(small[:50]).to(dev))
    result["parity_same_picks"] = float(np.mean(cpu_p == dev_p))

    # 2) data: unit vectors (like the detector's L2-normalised embeddings)
    def make():
        x = torch.randn(args.n, args.d, device=dev, generator=g, dtype=dtype)
        return x / x.float().norm(dim=1, keepdim=True).to(dtype)
    x, t_data = timed(dev, make)
    probs = torch.rand(args.n, device=dev, generator=g)
    lab = torch.randperm(args.n, device=dev, generator=g)[: args.labelled]
    result["data_s"] = round(t_data, 3)
    k_center_greedy(x[:50_000], 5, x[:100])  # warm-up (cuBLAS handles, kernels)

    # 3) k-center greedy: 10k picks away from 10k labelled centers
    mask = torch.ones(args.n, dtype=torch.bool, device=dev)
    mask[lab] = False
    pos = torch.nonzero(mask).flatten()
    picks, t_kc = timed(dev, lambda: k_center_greedy(x[pos], args.k, x[lab]))
    result["kcenter_s"] = round(t_kc, 3)
    result["kcenter_unique"] = int(len(np.unique(picks))) == args.k
    result["kcenter_target_s"] = 30.0
    result["kcenter_ok"] = bool(t_kc <= 30.0 or args.smoke)

    # 4) BADGE: k-means++ on gradient embeddings (p − ŷ)·[emb, 1]
    ge, t_ge = timed(dev, lambda: gradient_embeddings(x, probs))
    cg = torch.Generator().manual_seed(args.seed)
    bp, t_b = timed(dev, lambda: kmeans_pp(ge, args.badge_k, cg))
    ge = None  # free ~1 GiB before the hybrid run
    result["badge_grademb_s"] = round(t_ge, 3)
    result["badge_s"] = round(t_b, 3)
    result["badge_unique"] = int(len(np.unique(bp))) == args.badge_k

    # 5) hybrid through the public API (uncertainty pre-filter 4k, k-center among candidates)
    labelled = np.zeros(args.n, bool)
    labelled[lab.cpu().numpy()] = True
    st = SelectionState(x, probs, labelled, torch.Generator().manual_seed(args.seed))
    hp, t_h = timed(dev, lambda: get_strategy("hybrid").select(st, args.k))
    result["hybrid_s"] = round(t_h, 3)
    result["hybrid_valid"] = bool(len(set(hp.tolist())) == args.k and not labelled[hp].any())

    if dev.type == "cuda":
        result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    result["total_s"] = round(time.perf_counter() - t_start, 2)
    result["ok"] = bool(result["kcenter_ok"] and result["kcenter_unique"] and result["badge_unique"]
                        and result["hybrid_valid"] and result["parity_same_picks"] >= 0.95)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
