"""How long each arm trained, from an evaluation's results.json (eval_curve_dfdc.py): per budget and
seed, the caps every arm trained, the cap of the run it kept, its val and test AUC; the mean test
AUC by kept cap; and each method's paired difference against every baseline (val: what chooses;
test: what reports). It shows whether paired arms had the same chances (``--escalate group``) or
the escalation gate gave some arms more (``--escalate cell``). With ``--before OLD.json`` (a run of
the same subsets and seeds under another rule), the change of each arm it shares, per seed.

    .venv/bin/python benchmarks/cap_table.py benchmarks/results/finetune_embedder_dfdc_group_scratch/results.json \
        --before benchmarks/results/finetune_embedder_dfdc_seeded_scratch/results.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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


def paired_tables(cells: list[dict]) -> str:
    """Markdown: every method against every baseline, paired over seeds, on val and on test."""
    from edgedistal.pipeline.compare import paired_diff

    def arm(kind_is_method: bool) -> list[str]:
        return sorted({c["arm"] for c in cells if (c.get("kind") == "distilled") == kind_is_method
                       and c.get("kind") not in ("rs2", "full")})

    lines = ["| budget | method − baseline | val: diff [95 % CI] | test: diff [95 % CI], seeds: verdict |",
             "|---|---|---|---|"]
    for b in sorted({c["budget"] for c in cells if c.get("kind") != "full"}):
        def at(name: str, key: str, b: float = b) -> dict[int, float]:
            return {c["seed"]: float(c[key]) for c in cells if c["arm"] == name and c["budget"] == b}
        for m in arm(True):
            for base in arm(False):
                v, t = (paired_diff(at(m, k), at(base, k)) for k in ("best_val_auc", "frame_auc"))
                lines.append(f"| {100 * b:g} % | {m} − {base} | {v['mean']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] | "
                             f"{t['mean']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}], {t['n']}: {t['verdict']} |")
    return "\n".join(lines)


def before_after(cells: list[dict], before: list[dict]) -> str:
    """Markdown: test AUC of the baseline arms both runs drew the same way (same arm, budget, seed and
    label/group counts: a seeded draw; fingerprints differ across machines, as file times do), before → now."""
    old = {(c["arm"], c["budget"], c["seed"]): c for c in before if c.get("kind") == "baseline"}
    lines = ["| arm | budget | seed | before: kept cap, test AUC | now: kept cap, test AUC | change |",
             "|---|---|---|---|---|---|"]
    for c in sorted(cells, key=lambda c: (c["arm"], c["budget"], c["seed"])):
        o = old.get((c["arm"], c["budget"], c["seed"]))
        if o is None or any(o.get(k) != c.get(k) for k in ("n_real", "n_fake", "n_groups", "n_train")):
            continue
        caps = [int((x.get("attempts") or [x])[int(x.get("kept_attempt") or 0)]["step_cap"]) for x in (o, c)]
        lines.append(f"| {c['arm']} | {100 * c['budget']:g} % | {c['seed']} | {caps[0]}, {o['frame_auc']:.3f} | {caps[1]}, {c['frame_auc']:.3f} | "
                     f"{c['frame_auc'] - o['frame_auc']:+.3f} |")
    return "\n".join(lines)


def _cells(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{path}: not an eval_curve_dfdc.py results.json ({exc})") from None


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--before", type=Path, help="results.json of the same subsets under another rule")
    args = ap.parse_args(argv)
    cells = _cells(args.results)
    print(cap_tables(cells), "", paired_tables(cells), sep="\n")
    if args.before:
        print("", before_after(cells, _cells(args.before)), sep="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
