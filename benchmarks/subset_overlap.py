"""How much one method's subsets overlap across distillation seeds (``distill --seed``): when
two seeds share few picks, one subset is one draw of the method and a comparison that uses a
single subset measures that draw, not the method (docs/evaluation.md, "a method's own selection
variance").

    .venv/bin/python benchmarks/subset_overlap.py runs/embedder_selection_0.05 \\
        balanced_typiclust balanced_probcover mundig --seeds 5 --budgets 0.01,0.02,0.05 \\
        --out benchmarks/results/finetune_embedder_dfdc_seeded_init/subset_overlap

reads SEL/<method>_<seed> (the layout of ``DISTILL_SEEDS`` in finetune_embedder_dfdc.sh) and
writes ``--out``.{json,md}: the mean pairwise Jaccard overlap per method and budget, and the
overlap two random subsets of the same size would have.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgedistal.data.distilled import subset_at  # noqa: E402
from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import machine_summary  # noqa: E402


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def overlaps(sel: Path, method: str, seeds: int, budget: float) -> dict:
    """Mean and range of the pairwise Jaccard overlap of ``method``'s subsets over the seeds."""
    sets = [set(subset_at(sel / f"{method}_{s}", budget)["sample_id"].astype(str)) for s in range(seeds)]
    j = [jaccard(a, b) for a, b in itertools.combinations(sets, 2)]
    return {"method": method, "budget": budget, "n": len(sets[0]), "seeds": seeds,
            "jaccard_mean": sum(j) / len(j), "jaccard_min": min(j), "jaccard_max": max(j)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sel", type=Path, help="folder with <method>_<seed> distillations")
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budgets", default="0.01,0.02,0.05")
    ap.add_argument("--pool", type=int, default=None, help="pool size, for the random expectation "
                                                           "(default: read from the first distillation)")
    ap.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = ap.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    rows = [overlaps(args.sel, m, args.seeds, b) for m in args.methods for b in budgets]
    pool = args.pool
    if pool is None:
        from edgedistal.data.distilled import read_summary

        summary = read_summary(args.sel / f"{args.methods[0]}_0")
        pool = summary.pool if summary else None
    for r in rows:  # two independent uniform draws of n from the pool share ~n²/pool rows
        r["random_jaccard"] = (r["n"] / pool) / (2 - r["n"] / pool) if pool else None
    cmd = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    res = {"machine": machine_summary(), "command": cmd, "pool": pool, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), res)
    lines = ["# Overlap of one method's subsets across distillation seeds", "",
             f"Command: `{cmd}`", "",
             "Mean pairwise Jaccard overlap (min–max) of the subsets `distill --seed 0..N-1` picked; "
             "random: two uniform draws of the same size.", "",
             "| method | budget | n | seeds | Jaccard mean (min–max) | random |", "|---|---|---|---|---|---|"]
    for r in rows:
        rnd = f"{r['random_jaccard']:.3f}" if r["random_jaccard"] is not None else "?"
        lines.append(f"| {r['method']} | {r['budget']:g} | {r['n']:,} | {r['seeds']} | {r['jaccard_mean']:.2f} "
                     f"({r['jaccard_min']:.2f}–{r['jaccard_max']:.2f}) | {rnd} |")
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
