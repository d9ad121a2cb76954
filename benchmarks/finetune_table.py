"""Markdown tables from fine-tune curve results (eval_curve_dfdc.py's results.json): per
method and budget, the test AUC and the paired difference against the strongest baseline, for
each run given (e.g. from scratch and --init), so the README quotes a generated table; with two
runs, also the paired difference between them per arm and budget (same seeds: same training
seed, val carve and baseline draws), e.g. what ``--init`` adds.

``--on val`` makes the same tables from each cell's best val AUC instead of its test AUC — the
table that CHOOSES a method (then test reports it once). It is only meaningful when every arm
stopped on the same val rows (``--val-source split``); a carve run is refused. ``--on holdout``
uses each kept model's AUC on the val rows of the groups no arm stopped on (``holdout_val_auc``,
cells made or ``--rescore``d since it was recorded): an unbiased val reading, where the best val
AUC is the maximum of a noisy curve.

    .venv/bin/python benchmarks/finetune_table.py \\
        scratch=benchmarks/results/finetune_embedder_dfdc/results.json \\
        init=benchmarks/results/finetune_embedder_dfdc_init/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cell(p: dict) -> str:
    """``AUC (Δ vs strongest [lo, hi], n; verdict)`` of one comparison point."""
    if not p.get("paired_n"):
        return f"{p['mean']:.3f} (no paired seeds)"
    verdict = p["outcome"] if p["outcome"] == "tie" else f"**{p['outcome']}**"
    return (f"{p['mean']:.3f} ({p['diff']:+.3f} vs {p['baseline'].split(' ')[0]} "
            f"[{p['ci_lo']:+.3f}, {p['ci_hi']:+.3f}], {p['paired_n']} seeds; {verdict})")


def val_summary(result: dict, column: str = "best_val_auc") -> dict:
    """The run's summary recomputed on val: each cell's best val AUC on the shared val rows
    (``column="holdout_val_auc"``: its AUC on the val rows no arm stopped on)."""
    import pandas as pd

    from edgedistal.pipeline.compare import summarise

    cells = pd.DataFrame(result["cells"])
    if "val_source" not in cells or not (cells["val_source"] == "split").all():
        raise SystemExit("--on val needs a run whose arms all stopped on the shared val split (--val-source split)")
    if column not in cells or cells[column].isna().any():
        raise SystemExit(f"--on holdout needs {column} in every cell: re-run the evaluation with --rescore")
    keep = [c for c in cells.columns if not c.startswith(("frame_", "video_"))]
    return summarise(cells[keep].assign(frame_auc=cells[column]), result["summary"]["budgets"])


def load(path: str | Path, on: str = "test") -> dict:
    result = json.loads(Path(path).read_text())
    if on == "holdout":
        return val_summary(result, "holdout_val_auc")
    return val_summary(result) if on == "val" else result["summary"]


def table(runs: dict[str, Path], on: str = "test") -> str:
    data = {name: load(path, on) for name, path in runs.items()}
    budgets = sorted({round(b, 4) for summary in data.values() for b in summary["budgets"]})  # runs may differ
    lines = ["| run | method | " + " | ".join(f"{100 * b:g} %" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for name, summary in data.items():
        at = {m: {round(p["budget"], 4): p for p in comp["points"]} for m, comp in summary["comparisons"].items()}
        for method, points in at.items():
            lines.append(f"| {name} | {method} | " + " | ".join(cell(points[b]) if b in points else "–"
                                                              for b in budgets) + " |")
        strongest = []
        for b in budgets:
            pts = [points[b] for points in at.values() if b in points]
            strongest.append(f"{pts[0]['baseline'].split(' (')[0]} {pts[0]['baseline_mean']:.3f}" if pts else "–")
        lines.append(f"| {name} | *strongest baseline* | " + " | ".join(strongest) + " |")
    return "\n".join(lines)


def between(runs: dict[str, Path]) -> str:
    """``first − second`` per arm and budget, paired over the seeds both finished."""
    from edgedistal.pipeline.compare import paired_diff

    (na, pa), (nb, pb) = list(runs.items())[:2]
    cells = [{(c["arm"], round(c["budget"], 4), c["seed"]): c["frame_auc"] for c in json.loads(Path(p).read_text())["cells"]}
             for p in (pa, pb)]
    arms = sorted({k[0] for k in cells[0]} & {k[0] for k in cells[1]})
    budgets = sorted({k[1] for k in cells[0]} & {k[1] for k in cells[1]})  # the budgets both runs measured
    lines = [f"Paired difference {na} − {nb}, test AUC [95 % t-interval], seeds:", "",
             "| arm | " + " | ".join(f"{100 * b:g} %" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    all_means = []
    for arm in arms:
        row = []
        for b in budgets:
            d = paired_diff(*({k[2]: v for k, v in c.items() if k[:2] == (arm, b)} for c in cells))
            all_means.append(d["mean"])
            mark = "" if d["verdict"] == "tie" else f" **{d['verdict']}**"
            row.append(f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}], {d['n']}{mark}")
        lines.append(f"| {arm} | " + " | ".join(row) + " |")
    lines += ["", f"Mean over arms and budgets: {sum(all_means) / len(all_means):+.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    argv = sys.argv[1:]
    on = "test"
    if "--on" in argv:
        i = argv.index("--on")
        on = argv[i + 1]
        del argv[i:i + 2]
    given = dict(a.split("=", 1) for a in argv)
    print(f"AUC on {on}:\n")
    print(table(given, on))
    if len(given) == 2 and on == "test":
        print("\n" + between(dict(reversed(list(given.items())))))
