"""What keeping each cell's best run (instead of its last) changed in a fine-tune evaluation.

Under the converged protocol an arm that hits its cap with val AUC still rising is retrained
with a larger cap; the retraining is a new one-cycle run and its early stop can land lower than
the run it replaces. Cells written before the rule kept the last run. This compares a copy of
the cells as first written (``--before``) with the same cells after a re-run of the evaluation
reproduced each one's best run (``--after``): how many cells changed, by how much on val, whether
the reproduced run matched its logged val AUC (CPU training is deterministic), and how each
changed cell's test AUC moved.

    cp -r runs/X/eval/cells runs/cells_before        # before the re-run
    <re-run the evaluation's command>                 # reproduces the best runs
    .venv/bin/python benchmarks/kept_attempt_audit.py --before runs/cells_before \\
        --after runs/X/eval/cells --name kept_attempt_audit
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def audit(before: Path, after: Path) -> list[dict]:
    """One row per cell present in both folders whose best run was not its last."""
    from edgedistal.pipeline.evaluate import kept_attempt

    rows = []
    for p in sorted(before.glob("*.json")):
        old = json.loads(p.read_text())
        new_p = after / p.name
        attempts = old.get("attempts") or []
        if not new_p.exists() or len(attempts) < 2:
            continue
        k = kept_attempt(attempts)
        if k == len(attempts) - 1:
            continue
        new = json.loads(new_p.read_text())
        rows.append({
            "cell": old["cell"], "arm": old["arm"], "budget": old["budget"], "seed": old["seed"],
            "attempts": len(attempts), "kept_attempt": k, "val_last": attempts[-1]["best_val_auc"],
            "val_best": attempts[k]["best_val_auc"], "val_gain": attempts[k]["best_val_auc"] - attempts[-1]["best_val_auc"],
            "reproduced": new.get("kept_attempt") == k,
            "reproduced_val_auc": new.get("reproduced_val_auc"),
            "test_auc_before": old["frame_auc"], "test_auc_after": new["frame_auc"] if new.get("kept_attempt") == k else None,
            "reproduce_s": new.get("reproduce_s"),
        })
    return rows


def markdown(rows: list[dict], n_cells: int, n_escalated: int, machine: dict, command: str) -> str:
    done = [r for r in rows if r["reproduced"]]
    match = [r for r in done if r["reproduced_val_auc"] is not None
             and abs(r["reproduced_val_auc"] - r["val_best"]) < 1e-6]
    lines = [
        "# Keeping each cell's best run: what changed",
        "",
        f"{n_cells} cells, {n_escalated} retrained with a larger cap at least once; **{len(rows)} had kept a last "
        f"run below an earlier one on val** (mean {_mean(r['val_gain'] for r in rows):.3f}, max "
        f"{max((r['val_gain'] for r in rows), default=0):.3f} val AUC). {len(done)} were reproduced (their best run "
        f"retrained, same seed and cap); {len(match)} of them matched the logged val AUC exactly.",
        "",
        "| cell | runs | kept | val: last → best | reproduced val | test AUC: last → best | reproduce s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        after = "–" if r["test_auc_after"] is None else f"{r['test_auc_after']:.4f}"
        rep = "–" if r["reproduced_val_auc"] is None else f"{r['reproduced_val_auc']:.4f}"
        lines.append(f"| {r['cell']} | {r['attempts']} | {r['kept_attempt'] + 1} | {r['val_last']:.4f} → "
                     f"{r['val_best']:.4f} | {rep} | {r['test_auc_before']:.4f} → {after} | "
                     f"{r['reproduce_s'] or 0:.0f} |")
    if done:
        d = [r["test_auc_after"] - r["test_auc_before"] for r in done]
        lines += ["", f"Test AUC of the reproduced cells moved by {_mean(d):+.4f} on average "
                  f"(min {min(d):+.4f}, max {max(d):+.4f}); the test split chose nothing (the run is chosen on val)."]
    lines += ["", f"Machine: {json.dumps(machine)}", "", f"Command: `{command}`", ""]
    return "\n".join(lines)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    from edgedistal.utils.io import write_json_atomic, write_text_atomic
    from edgedistal.utils.machine import machine_summary

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a copy of the cells as first written")
    ap.add_argument("--after", type=Path, required=True, help="the cells after the re-run")
    ap.add_argument("--name", default="kept_attempt_audit", help="results name under benchmarks/results/")
    args = ap.parse_args(argv)
    cells = [json.loads(p.read_text()) for p in sorted(args.before.glob("*.json"))]
    escalated = sum(len(c.get("attempts") or []) > 1 for c in cells)
    rows = audit(args.before, args.after)
    command = "python benchmarks/kept_attempt_audit.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = machine_summary("cpu")
    out = Path(__file__).resolve().parent / "results"
    write_json_atomic(out / f"{args.name}.json", {"machine": machine, "command": command, "cells": len(cells),
                                                  "escalated": escalated, "rows": rows})
    md = markdown(rows, len(cells), escalated, machine, command)
    write_text_atomic(out / f"{args.name}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
