"""How long each arm trained, from an evaluation's results.json (eval_curve_dfdc.py): per budget and
seed, the caps every arm trained, the cap of the run it kept, its val and test AUC; then the mean
test AUC by kept cap. It shows whether paired arms had the same chances (``--escalate group``)
or the escalation gate gave some arms more (``--escalate cell``).

    .venv/bin/python benchmarks/cap_table.py benchmarks/results/finetune_embedder_dfdc_group_scratch/results.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def cap_tables(cells: list[dict]) -> str:
    """Markdown: one row per cell (grouped by budget and seed), then test AUC by kept cap."""
    lines = ["| budget | seed | arm | caps trained (steps) | kept cap | val AUC | test AUC |",
             "|---|---|---|---|---|---|---|"]
    by_cap: dict[int, list[float]] = defaultdict(list)
    for c in sorted(cells, key=lambda c: (c["budget"], c["seed"], c["arm"])):
        if c.get("kind") == "rs2" or c["arm"] == "full":
            continue
        attempts = c.get("attempts") or [{"step_cap": c["step_cap"]}]
        kept = int(attempts[int(c.get("kept_attempt") or 0)]["step_cap"])
        by_cap[kept].append(float(c["frame_auc"]))
        flag = " (capped_improving)" if c.get("capped_improving") else ""
        lines.append(f"| {100 * c['budget']:g} % | {c['seed']} | {c['arm']} | "
                     f"{', '.join(str(a['step_cap']) for a in attempts)}{flag} | {kept} | "
                     f"{c['best_val_auc']:.3f} | {c['frame_auc']:.3f} |")
    lines += ["", "| kept cap (steps) | cells | mean test AUC | range |", "|---|---|---|---|"]
    for cap in sorted(by_cap):
        v = by_cap[cap]
        lines.append(f"| {cap} | {len(v)} | {sum(v) / len(v):.3f} | {min(v):.3f}–{max(v):.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: cap_table.py RESULTS_JSON")
    path = Path(argv[0])
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{path}: not an eval_curve_dfdc.py results.json ({exc})") from None
    print(cap_tables(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
