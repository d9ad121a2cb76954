"""Pack the DFDC dev face crops into one git-ignored file for the GPU machine (≤ ~55 MiB).

    .venv/bin/python scripts/pack_dfdc.py --out .gpu/dfdc_pack.npz [--size 128 --quality 85]

Default: all 23,578 crops (4,045 real + 19,533 fake) as 128 px WebP q85 ≈ 33 MiB. The group
split (seed 0, 80/10/10 by identity group) is stored in the pack so every machine tests on the
same held-out groups. ``--max-fakes`` keeps every real and a seeded random subset of fakes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgedistal.data.archive import shared_dataset  # noqa: E402
from edgedistal.data.layouts import read_layout  # noqa: E402
from edgedistal.data.pack import write_pack  # noqa: E402
from edgedistal.data.split import ensure_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".gpu/dfdc_pack.npz")
    ap.add_argument("--src", default=None, help="dfdc-faces folder (default: ../shared tarball)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--format", default="webp", choices=["webp", "jpg"])
    ap.add_argument("--max-fakes", type=int, default=None)
    ap.add_argument("--max-mib", type=float, default=55.0, help="fail if the pack is larger")
    ap.add_argument("--seed", type=int, default=0, help="group split seed")
    args = ap.parse_args(argv)

    src = Path(args.src) if args.src else shared_dataset("dfdc-faces-dev")
    if src is None:
        print("dfdc-faces-dev.tar not found under ../shared/datasets (or pass --src)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    manifest = ensure_split(read_layout(src, "dfdc-faces").manifest, seed=args.seed)
    if args.max_fakes is not None:
        df = manifest.df
        fakes = np.flatnonzero(df["label"].to_numpy() == 1)
        rng = np.random.default_rng(args.seed)
        keep_f = rng.choice(fakes, size=min(args.max_fakes, len(fakes)), replace=False)
        keep = np.sort(np.concatenate([np.flatnonzero(df["label"].to_numpy() == 0), keep_f]))
        manifest = manifest.take(keep)
    info = write_pack(
        manifest, args.out, size=args.size, quality=args.quality, fmt=args.format,
        meta={"dataset": "dfdc-faces-dev", "split_seed": args.seed},
    )
    mib = info["file_bytes"] / 2**20
    counts = manifest.df.groupby(["split", "label"]).size().to_dict()
    print(f"wrote {args.out}: {info['count']} crops, {mib:.1f} MiB, {args.size}px {args.format} "
          f"q{args.quality}, {time.perf_counter() - t0:.0f}s; split×label counts {counts}")
    if mib > args.max_mib:
        print(f"pack is {mib:.1f} MiB > --max-mib {args.max_mib}: lower --quality or --max-fakes",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
