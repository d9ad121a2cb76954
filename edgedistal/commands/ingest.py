"""`edgedistal ingest`: read a dataset layout into a manifest and print what was found."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import examples, out_option
from edgedistal.data.layouts import LAYOUTS, LayoutResult, Problem

_SHOW_PROBLEMS = 5

EXAMPLES = examples('''
# detect the layout, keep the dataset's own split
edgedistal ingest data/FaceForensics -o manifest.parquet
# a folder without a split: group split 80/10/10 (whole videos/identities per split), CSV too
edgedistal ingest data/my_faces --layout folder --split 0.8,0.1,0.1 -o manifest.parquet --csv
''')


def _parse_fractions(text: str | None) -> tuple[float, float, float] | None:
    if not text:
        return None
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise click.BadParameter(
            f"{text!r}: expected three fractions like 0.8,0.1,0.1", param_hint="--split"
        )
    return parts  # type: ignore[return-value]


def problems_path(out: Path) -> Path:
    """``manifest.parquet`` → ``manifest.problems.csv`` (next to the manifest)."""
    return out.with_name(out.stem + ".problems.csv")


def write_problems(problems: list[Problem], path: Path) -> Path:
    import pandas as pd

    from edgedistal.utils.io import atomic_path

    df = pd.DataFrame(
        [{"path": p.path, "reason": p.reason} for p in problems], columns=["path", "reason"]
    )
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def print_summary(result: LayoutResult, detected: bool, out: Path) -> None:
    """Rich table: samples/groups/videos per source × method × label, then the problems."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = result.manifest
    how = "auto-detected" if detected else "given"
    console.print(f"layout: [bold]{result.layout}[/] ({how}) at {result.root}")
    table = Table(title=f"{len(m):,} samples, {m.df['group'].nunique():,} groups → {out}")
    for col in ("source", "method", "label", "media", "samples", "groups", "videos"):
        table.add_column(col, justify="right" if col in {"samples", "groups", "videos"} else "left")
    df = m.df.assign(label_name=m.df["label"].map({0: "real", 1: "fake"}))
    agg = (
        df.groupby(["source", "method", "label_name", "media"], dropna=False)
        .agg(
            samples=("sample_id", "size"), groups=("group", "nunique"), videos=("video", "nunique")
        )
        .reset_index()
    )
    for r in agg.itertuples(index=False):
        table.add_row(
            r.source,
            r.method or "-",
            r.label_name,
            r.media,
            f"{r.samples:,}",
            f"{r.groups:,}",
            f"{r.videos:,}",
        )
    console.print(table)
    splits = df["split"].replace("", "(none)").value_counts()
    console.print("splits: " + ", ".join(f"{k} {v:,}" for k, v in splits.items()))
    if result.problems:
        console.print(f"[yellow]{len(result.problems):,} problem(s) skipped[/], first ones:")
        for p in result.problems[:_SHOW_PROBLEMS]:
            console.print(f"  {p.path}: {p.reason}", markup=False, highlight=False)
        console.print(f"all problems: {problems_path(out)}")
    else:
        console.print("problems: 0")


@click.command("ingest", epilog=EXAMPLES)
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    help=f"Dataset layout: auto or one of {', '.join(LAYOUTS)}.",
)
@out_option(default=Path("manifest.parquet"), help="The manifest (.parquet), plus .problems.csv if files were skipped.")
@click.option(
    "--csv", "also_csv", is_flag=True, help="Also write the manifest as CSV next to --out."
)
@click.option(
    "--split",
    "split",
    default=None,
    help="Group split fractions, e.g. 0.8,0.1,0.1 (default: keep the dataset's own split, if any).",
)
@click.option("--split-seed", default=0, show_default=True, type=int,
              help="Seed of the by-group split (--split); the same seed gives the same split.")
@click.option(
    "--strict", is_flag=True, help="Stop at the first problem file instead of skipping it."
)
@click.option(
    "--source", default=None, help="Dataset name for the `source` column (default per layout)."
)
@click.option(
    "--compression",
    default=None,
    help="FF++/DFD quality folder: c0, raw, c23 or c40 (default c23).",
)
@click.option("--verify", is_flag=True, help="Decode every image / open every video (slow).")
def ingest(
    src: Path,
    layout: str,
    out: Path,
    also_csv: bool,
    split: str | None,
    split_seed: int,
    strict: bool,
    source: str | None,
    compression: str | None,
    verify: bool,
) -> None:
    """Read the dataset at SRC into a manifest (one row per image or video)."""
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.manifest import looks_like_manifest
    from edgedistal.data.split import group_split
    from edgedistal.utils.io import check_output_file

    fractions = _parse_fractions(split)
    check_output_file(out, replaceable=looks_like_manifest)
    if also_csv:
        check_output_file(out.with_suffix(".csv"), "--csv", replaceable=looks_like_manifest)
    result = read_layout(
        src, layout, strict=strict, source=source, compression=compression, verify=verify
    )
    if fractions is not None:
        result.manifest = group_split(result.manifest, fractions, split_seed)
    result.manifest.save(out)
    if also_csv:
        result.manifest.save(out.with_suffix(".csv"))
    if result.problems:
        write_problems(result.problems, problems_path(out))
    elif problems_path(out).exists():  # a stale list from an earlier run would mislead
        problems_path(out).unlink()
    print_summary(result, detected=layout == "auto", out=out)
    warn_one_class(result.manifest)


def warn_one_class(manifest) -> None:
    """Ingest may read a one-class folder (half of a dataset); train and distill will refuse it."""
    labels = set(manifest.df["label"].unique().tolist())
    if len(labels) == 1:
        only = "real" if labels == {0} else "fake"
        click.echo(f"warning: only {only} samples found; train and distill need both real and fake", err=True)
