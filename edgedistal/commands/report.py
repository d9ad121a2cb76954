"""`edgedistal report RUN_DIR`: Markdown + self-contained HTML with figures for a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import examples, out_option

EXAMPLES = examples('''
# report.md + report.html (figures embedded) inside the evaluate run
edgedistal report runs/eval
# a distill run's report written elsewhere
edgedistal report d_hybrid -o reports/d_hybrid
''')


@click.command("report", epilog=EXAMPLES)
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@out_option(file_okay=False, help="Where to write report.md, report.html and figures/ (default: RUN_DIR).")
def report(run_dir: Path, out: Path | None) -> None:
    """Render an evaluate/distill run folder: conclusion, budget curves, picks, compute saved."""
    from edgedistal.pipeline.report import write_report
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out or run_dir)
    res = write_report(run_dir, out)
    click.echo(res["conclusion"])
    click.echo(f"markdown: {res['markdown']}\nhtml: {res['html']}\nfigures: {', '.join(res['figures']) or 'none'}")
