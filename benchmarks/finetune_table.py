"""One Markdown table from fine-tune curve results (eval_curve_dfdc.py's results.json): per
method and budget, the test AUC and the paired difference against the strongest baseline, for
each run given (e.g. from scratch and --init), so the README quotes a generated table.

    .venv/bin/python benchmarks/finetune_table.py \\
        scratch=benchmarks/results/finetune_embedder_dfdc/results.json \\
        init=benchmarks/results/finetune_embedder_dfdc_init/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cell(p: dict) -> str:
    """``AUC (Δ vs strongest [lo, hi], n; verdict)`` of one comparison point."""
    if not p.get("paired_n"):
        return f"{p['mean']:.3f} (no paired seeds)"
    verdict = p["outcome"] if p["outcome"] == "tie" else f"**{p['outcome']}**"
    return (f"{p['mean']:.3f} ({p['diff']:+.3f} vs {p['baseline'].split(' ')[0]} "
            f"[{p['ci_lo']:+.3f}, {p['ci_hi']:+.3f}], {p['paired_n']} seeds; {verdict})")


def table(runs: dict[str, Path]) -> str:
    data = {name: json.loads(Path(path).read_text())["summary"] for name, path in runs.items()}
    budgets = next(iter(data.values()))["budgets"]
    lines = ["| run | method | " + " | ".join(f"{100 * b:g} %" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for name, summary in data.items():
        for method, comp in summary["comparisons"].items():
            lines.append(f"| {name} | {method} | " + " | ".join(cell(p) for p in comp["points"]) + " |")
        strongest = []
        for i, _ in enumerate(budgets):
            pts = [c["points"][i] for c in summary["comparisons"].values()]
            strongest.append(f"{pts[0]['baseline'].split(' (')[0]} {pts[0]['baseline_mean']:.3f}" if pts else "–")
        lines.append(f"| {name} | *strongest baseline* | " + " | ".join(strongest) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(dict(a.split("=", 1) for a in sys.argv[1:])))
