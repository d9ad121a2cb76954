"""`edgedistal engines`: TensorRT engines from export/ (ONNX Runtime artifacts without TensorRT)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgedistal.commands.export import parse_precisions
from edgedistal.commands.options import device_option, examples, out_option, threads_option
from edgedistal.runtime.base import PRECISIONS

EXAMPLES = examples('''
# TensorRT engines (or the ONNX Runtime models without TensorRT) from export/
edgedistal engines --export-dir export -o engines
# after `make demo`: export the demo detector first if export/ is empty
edgedistal engines --export-dir export -o engines --demo-if-missing --demo-checkpoint demo_out/detector.pt
# the ONNX Runtime CPU models even where TensorRT is installed
edgedistal engines --export-dir export -o engines_cpu --device cpu --threads 2
''')


@click.command(epilog=EXAMPLES)
@click.option("--export-dir", default="export", show_default=True, type=click.Path(path_type=Path),
              help="Folder from `edgedistal export`.")
@out_option(default="engines", help="Folder for model_<precision>.{engine,onnx} (and embedder_<precision>.* when export/ holds an embedder), their sidecars, engines.json.")
@click.option("--precisions", default=",".join(PRECISIONS), show_default=True, help="Comma list of fp32, fp16, int8.")
@click.option("--min-batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="TensorRT optimisation profile: smallest batch the engine accepts.")
@click.option("--opt-batch", default=32, show_default=True, type=click.IntRange(min=1),
              help="The batch TensorRT tunes its kernels for.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(min=1),
              help="Largest batch the engine accepts.")
@click.option("--workspace-mb", default=1024, show_default=True, type=click.IntRange(min=1),
              help="TensorRT builder workspace (MiB); smaller on a Jetson.")
@click.option("--int8-target", default="auto", show_default=True, type=click.Choice(["auto", "tensorrt", "cpu"]),
              help="tensorrt: symmetric S8S8 QDQ; cpu: U8S8 for ONNX Runtime's integer kernels; "
                   "auto: tensorrt with TensorRT, cpu for the ONNX Runtime fallback.")
@click.option("--calib-distilled", type=click.Path(path_type=Path), default=None,
              help="A `distill` output folder: its subset calibrates int8 (default: found next to the export).")
@click.option("--calib-manifest", type=click.Path(path_type=Path), default=None,
              help="Any manifest to calibrate int8 on instead.")
@click.option("--calib-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Calibration images (int8 re-quantisation).")
@click.option("--demo-if-missing", is_flag=True,
              help="If export/ is empty, export the demo checkpoint (from `make demo`) first.")
@click.option("--demo-checkpoint", default="demo_out/detector.pt", show_default=True,
              type=click.Path(path_type=Path), help="The checkpoint --demo-if-missing exports.")
@device_option("TensorRT builds on this GPU (cuda:N); cpu writes the ONNX Runtime CPU models instead.")
@threads_option()
def engines(export_dir: Path, out: Path, precisions: str, min_batch: int, opt_batch: int,
            max_batch: int, workspace_mb: int, int8_target: str, calib_distilled: Path | None,
            calib_manifest: Path | None, calib_size: int, demo_if_missing: bool, demo_checkpoint: Path,
            device: str, threads: int | None) -> None:
    """Build one TensorRT engine per precision, with a JSON sidecar each."""
    from edgedistal.deploy.engines import build_all, ensure_export, exported_prefixes
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out)
    ensure_export(export_dir, demo_if_missing=demo_if_missing, demo_checkpoint=demo_checkpoint)
    failed = False
    for prefix in exported_prefixes(export_dir):  # the detector's and the embedder's, as exported
        summary = build_all(export_dir, out, parse_precisions(precisions), min_batch, opt_batch,
                            max_batch, workspace_mb, int8_target=int8_target, calib_manifest=calib_manifest,
                            calib_distilled=calib_distilled, calib_size=calib_size, device=device, prefix=prefix)
        failed = _print_summary(summary, out, "detector" if prefix == "model" else prefix) or failed
    if failed:
        sys.exit(1)


def _print_summary(summary: dict, out: Path, what: str) -> bool:
    """Print one model's engines; True when a precision failed."""
    click.echo(f"{what}: {summary['note']}")
    for prec, meta in summary["built"].items():
        click.echo(f"{prec:>5}: {out / meta['file']}")
        if prec == "int8":
            cal = meta.get("calibration") or {}
            method = (meta.get("quantisation") or {}).get("method")
            line = (f"       int8 target {meta.get('int8_target')}, calibration method {method}, "
                    f"calibrated on {cal.get('source', 'unknown')}")
            if cal.get("kind") == "generated":
                click.echo(click.style("WARNING: " + line.strip() + " — GENERATED images, not real faces; "
                                       "pass --calib-distilled DIR", fg="yellow"), err=True)
            else:
                click.echo(line)
    for prec, why in summary["failed"].items():
        click.echo(f"{prec:>5}: FAILED {why}", err=True)
    return bool(summary["failed"])
