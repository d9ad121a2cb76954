"""`edgedistal report RUN_DIR`: Markdown + self-contained HTML with figures for a run folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "-o", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to write report.md, report.html and figures/ (default: RUN_DIR).")
def report(run_dir: Path, out: Path | None) -> None:
    """Render an evaluate/distill run folder: conclusion, budget curves, picks, compute saved."""
    from edgedistal.report import write_report
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out or run_dir)
    res = write_report(run_dir, out)
    click.echo(res["conclusion"])
    click.echo(f"markdown: {res['markdown']}\nhtml: {res['html']}\nfigures: {', '.join(res['figures']) or 'none'}")
