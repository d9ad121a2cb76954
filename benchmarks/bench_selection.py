"""k-center greedy and BADGE selection: chunked torch (edgedistal) vs a plain NumPy reference.

The reference updates distances one sample at a time with ``((X - c) ** 2).sum(1)`` (an N×D
temporary per pick), the usual textbook implementation. Both run in this one process on the same
data and the same picks count, so the ratio is what matters; other jobs on a shared machine slow
both sides alike. Writes JSON + Markdown to benchmarks/results/.

    .venv/bin/python benchmarks/bench_selection.py                # 100k × 256, 300 picks
    .venv/bin/python benchmarks/bench_selection.py --n 20000 --k 100   # smoke
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgedistal.acquire.kernels import (
    gradient_embeddings,
    k_center_greedy,
    kmeans_pp,
    min_sq_dist,
)
from edgedistal.utils.io import write_json_atomic, write_text_atomic
from edgedistal.utils.machine import machine_summary

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return machine_summary(note="shared machine: other jobs were running; ratios are from one process, one run")


def ref_kcenter(x: np.ndarray, labelled: np.ndarray, k: int) -> list[int]:
    d = np.full(len(x), np.inf, np.float32)
    for c in labelled:
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    d[labelled] = -1
    out = []
    for _ in range(k):
        i = int(np.argmax(d))
        out.append(i)
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
        d[i] = -1
    return out


def ref_badge(g: np.ndarray, k: int, seed: int) -> list[int]:
    """k-means++ on gradient embeddings, drawing the same CPU uniforms as edgedistal."""
    gen = torch.Generator().manual_seed(seed)
    first = int(np.argmax((g**2).sum(1)))
    out = [first]
    d = ((g - g[first]) ** 2).sum(1)
    d[first] = 0
    for _ in range(1, k):
        cum = np.cumsum(d.astype(np.float64))
        u = float(torch.rand(1, generator=gen, dtype=torch.float64)) * cum[-1]
        i = min(int(np.searchsorted(cum, u)), len(g) - 1)
        out.append(i)
        d = np.minimum(d, ((g - g[i]) ** 2).sum(1))
        d[i] = 0
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--k", type=int, default=300, help="picks per method")
    ap.add_argument("--labelled", type=int, default=200, help="labelled centers for k-center")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (NumPy ref is single-threaded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_selection")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.n, args.d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    probs = rng.random(args.n).astype(np.float32)
    lab = rng.choice(args.n, args.labelled, replace=False)
    mask = np.zeros(args.n, bool)
    mask[lab] = True
    xt = torch.from_numpy(x)
    rows = []

    # k-center: edgedistal on the unlabelled rows with the labelled rows as centers
    pos = np.flatnonzero(~mask)
    ours, t_ours = timed(lambda: pos[k_center_greedy(xt[torch.from_numpy(pos)], args.k, xt[torch.from_numpy(lab)])])
    ref, t_ref = timed(lambda: ref_kcenter(x, lab, args.k))
    rows.append({"method": "k-center greedy", "ours_s": t_ours, "reference_s": t_ref,
                 "speedup": t_ref / t_ours, "same_picks": float(np.mean(np.asarray(ours) == np.asarray(ref)))})

    # init alone: min distance of the pool to the labelled set (chunked matmul vs loop)
    _, t_init = timed(lambda: min_sq_dist(xt, xt[torch.from_numpy(lab)]))
    _, t_init_ref = timed(lambda: ref_kcenter(x, lab, 0))
    rows.append({"method": f"min-dist init ({args.labelled} centers)", "ours_s": t_init, "reference_s": t_init_ref,
                 "speedup": t_init_ref / t_init, "same_picks": None})

    # BADGE
    g = gradient_embeddings(xt, torch.from_numpy(probs))
    ours_b, t_b = timed(lambda: kmeans_pp(g, args.k, torch.Generator().manual_seed(args.seed)))
    gn = g.numpy()
    ref_b, t_b_ref = timed(lambda: ref_badge(gn, args.k, args.seed))
    rows.append({"method": "BADGE (k-means++ on grad emb)", "ours_s": t_b, "reference_s": t_b_ref,
                 "speedup": t_b_ref / t_b, "same_picks": float(np.mean(np.asarray(ours_b) == np.asarray(ref_b)))})

    result = {"n": args.n, "d": args.d, "k": args.k, "labelled": args.labelled, "machine": machine(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), result)
    m = result["machine"]
    lines = [
        f"# Selection benchmark: {args.n:,} × {args.d}, {args.k} picks",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} thread(s)), "
        f"NumPy {m['numpy']}, Python {m['python']}. {m['note']}.",
        "",
        "| method | edgedistal (s) | NumPy reference (s) | speed-up | same picks |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        same = "–" if r["same_picks"] is None else f"{100 * r['same_picks']:.0f} %"
        lines.append(f"| {r['method']} | {r['ours_s']:.2f} | {r['reference_s']:.2f} | {r['speedup']:.1f}× | {same} |")
    lines += ["", f"Command: `.venv/bin/python benchmarks/bench_selection.py --n {args.n} --d {args.d} "
              f"--k {args.k} --labelled {args.labelled} --threads {args.threads}`", ""]
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
