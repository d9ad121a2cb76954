"""How much a paired verdict depends on which identities the test set holds, from the test scores
an evaluation's cells keep (``cells/<cell>.scores.npy``; older cells: ``evaluate --rescore``).

For one method and baseline at one budget it prints (1) the seed t-interval (test set fixed),
(2) the seeds × test-groups bootstrap interval, and (3) the spread of the mean paired difference
over random test subsets of ``--groups`` identity groups (default 170, the size of the 1,000-row
val set these runs stop on): if two identity sets of that size routinely disagree by as much as
val and test do, the val/test disagreement needs no other cause.

    .venv/bin/python benchmarks/identity_spread.py runs/finetune_embedder_dfdc_group_scratch_small/eval \
        --manifest runs/pretrain_dfdc/manifest.parquet --method groupcap+ccs --baseline balanced --budget 0.01
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    from edgedistal.data.manifest import Manifest
    from edgedistal.data.split import ensure_split
    from edgedistal.pipeline.bootstrap import paired_bootstrap, weighted_auc
    from edgedistal.pipeline.compare import paired_diff
    from edgedistal.pipeline.evaluate import read_scores
    from edgedistal.utils.io import read_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir", type=Path, help="an evaluation folder (holds cells/ and eval_config.json)")
    ap.add_argument("--manifest", type=Path, required=True, help="the manifest the evaluation ran on")
    ap.add_argument("--method", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--budget", type=float, required=True)
    ap.add_argument("--groups", type=int, default=170, help="identity groups per test subset (default: val's 170)")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")
    args = ap.parse_args(argv)

    cfg = read_json(args.eval_dir / "eval_config.json")
    df = ensure_split(Manifest.load(args.manifest), seed=int(cfg.get("split_seed", 0))).df
    test = np.flatnonzero((df["split"] == "test").to_numpy())
    y, groups = df["label"].to_numpy()[test], df["group"].astype(str).to_numpy()[test]
    cells = args.eval_dir / "cells"
    tag = f"b{args.budget:.3f}"
    scores: dict[str, dict[int, np.ndarray]] = {args.method: {}, args.baseline: {}}
    for arm in scores:
        for path in sorted(cells.glob(f"{arm}_{tag}_s*.json")):
            rec = read_json(path)
            arr = read_scores(cells, rec, len(test))
            if arr is None:
                raise SystemExit(f"{path}: no test scores kept; re-run the evaluation with --rescore")
            scores[arm][int(rec["seed"])] = arr
    a, b = scores[args.method], scores[args.baseline]
    seeds = sorted(set(a) & set(b))
    ones = np.ones(len(y))
    auc = {arm: {s: float(weighted_auc(v[s], y, ones)) for s in seeds} for arm, v in scores.items()}
    t = paired_diff(auc[args.method], auc[args.baseline])
    boot = paired_bootstrap({s: a[s] for s in seeds}, {s: b[s] for s in seeds}, y, groups)
    rng = np.random.default_rng(0)
    names = np.unique(groups)
    k = min(args.groups, len(names))
    w = np.zeros((args.draws, len(y)))
    for i in range(args.draws):
        w[i, np.isin(groups, rng.choice(names, size=k, replace=False))] = 1.0
    diffs = np.mean([weighted_auc(a[s], y, w) - weighted_auc(b[s], y, w) for s in seeds], axis=0)
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    out = {"method": args.method, "baseline": args.baseline, "budget": args.budget, "seeds": seeds,
           "test_rows": int(len(y)), "test_groups": int(len(names)),
           "t_interval": {k2: t[k2] for k2 in ("mean", "lo", "hi", "verdict")},
           "bootstrap_seeds_x_groups": {k2: boot[k2] for k2 in ("mean", "lo", "hi", "verdict", "n_boot")},
           "subsets": {"groups": k, "draws": args.draws, "mean": float(np.nanmean(diffs)),
                       "sd": float(np.nanstd(diffs)), "p2.5": float(lo), "p97.5": float(hi),
                       "share_below_0": float(np.nanmean(diffs < 0))}}
    print(f"{args.method} − {args.baseline} at {100 * args.budget:g} %, {len(seeds)} paired seeds, "
          f"{len(y)} test crops of {len(names)} groups")
    print(f"  seed t-interval (test set fixed):   {t['mean']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}] {t['verdict']}")
    print(f"  bootstrap, seeds × test groups:     {boot['mean']:+.3f} [{boot['lo']:+.3f}, {boot['hi']:+.3f}] "
          f"{boot['verdict']}")
    print(f"  test subsets of {k} groups ({args.draws}): mean {out['subsets']['mean']:+.3f}, sd "
          f"{out['subsets']['sd']:.3f}, 95 % of them in [{lo:+.3f}, {hi:+.3f}], "
          f"{100 * out['subsets']['share_below_0']:.1f} % below 0")
    if args.out is not None:
        from edgedistal.utils.io import write_json_atomic

        write_json_atomic(args.out, out)
    return out


if __name__ == "__main__":
    main()
