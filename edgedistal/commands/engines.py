"""`edgedistal engines`: TensorRT engines from export/ (ONNX Runtime artifacts without TensorRT)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgedistal.commands.export import parse_precisions


@click.command()
@click.option("--export-dir", default="export", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="engines", show_default=True, type=click.Path(path_type=Path))
@click.option("--precisions", default="fp32,fp16,int8", show_default=True)
@click.option("--min-batch", default=1, show_default=True)
@click.option("--opt-batch", default=32, show_default=True)
@click.option("--max-batch", default=64, show_default=True)
@click.option("--workspace-mb", default=1024, show_default=True)
@click.option("--demo-if-missing", is_flag=True,
              help="If export/ is empty, export demo_out/detector.pt (from `make demo`) first.")
def engines(export_dir: Path, out: Path, precisions: str, min_batch: int, opt_batch: int,
            max_batch: int, workspace_mb: int, demo_if_missing: bool) -> None:
    """Build one TensorRT engine per precision, with a JSON sidecar each."""
    from edgedistal.engines import build_all, ensure_export
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out)
    ensure_export(export_dir, demo_if_missing=demo_if_missing)
    summary = build_all(export_dir, out, parse_precisions(precisions), min_batch, opt_batch,
                        max_batch, workspace_mb)
    click.echo(summary["note"])
    for prec, meta in summary["built"].items():
        click.echo(f"{prec:>5}: {out / meta['file']}")
    for prec, why in summary["failed"].items():
        click.echo(f"{prec:>5}: FAILED {why}", err=True)
    if summary["failed"]:
        sys.exit(1)
