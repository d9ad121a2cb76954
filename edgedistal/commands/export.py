"""`edgedistal export`: checkpoint → ONNX (fp32, fp16, int8 QDQ) + export.json with parity."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import examples, out_option, threads_option
from edgedistal.runtime.base import PRECISIONS

EXAMPLES = examples('''
# fp32, fp16 and int8 (calibrated on the distilled subset) into export/
edgedistal export --checkpoint runs/det/detector.pt --calib-distilled d_hybrid -o export
# only int8 for ONNX Runtime's integer CPU kernels, with 2 threads
edgedistal export --checkpoint runs/det/detector.pt --precisions fp32,int8 --int8-target cpu \\
    --threads 2 -o export_cpu
# the embedder beside it: embedder_fp32/fp16/int8.onnx + embedder.json in the same folder
edgedistal export --checkpoint runs/emb/embedder.pt --calib-distilled d_hybrid -o export
''')


def parse_precisions(text: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in items if p not in PRECISIONS]
    if bad or not items:
        raise click.BadParameter(f"{text!r}: use a comma list of fp32, fp16, int8", param_hint="--precisions")
    return items


@click.command(epilog=EXAMPLES)
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="Checkpoint from `train` (model_<p>.onnx) or `pretrain` (embedder_<p>.onnx).")
@out_option(default="export", help="Folder for model_<precision>.onnx + export.json (an embedder: embedder_<precision>.onnx + embedder.json).")
@click.option("--calib-manifest", type=click.Path(path_type=Path), default=None,
              help="Manifest whose images calibrate int8 and check parity.")
@click.option("--calib-distilled", type=click.Path(path_type=Path), default=None,
              help="A `distill` output folder whose subset calibrates int8 (default: one found next to "
                   "the checkpoint or --out; else the train split `train` saved beside the checkpoint; else "
                   "generated images, with a warning).")
@click.option("--int8-target", default="auto", show_default=True, type=click.Choice(["auto", "tensorrt", "cpu"]),
              help="tensorrt: symmetric S8S8 QDQ; cpu: U8S8 QDQ that ONNX Runtime runs as integer kernels; "
                   "auto (as `engines`): tensorrt where TensorRT is installed, else cpu.")
@click.option("--calib-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Calibration / parity images.")
@click.option("--precisions", default=",".join(PRECISIONS), show_default=True, help="Comma list of fp32, fp16, int8.")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(min=17),
              help="ONNX opset (17 or newer: TensorRT's parser and ORT's quantiser need it).")
@threads_option("Export, parity and calibration run on the CPU: the ONNX graph does not depend on a device.")
def export(checkpoint: Path, out: Path, calib_manifest: Path | None, calib_distilled: Path | None,
           int8_target: str, calib_size: int, precisions: str, opset: int, threads: int | None) -> None:
    """Export a checkpoint to ONNX: uint8 NHWC `images` in; `prob`, `embedding` out."""
    from edgedistal.deploy.export import SIDECAR, export_all
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out)
    if int8_target == "auto":
        from edgedistal.deploy.engines import _tensorrt_installed, resolve_int8_target

        int8_target = resolve_int8_target(int8_target, _tensorrt_installed())
    side = export_all(checkpoint, out, parse_precisions(precisions), calib_manifest, calib_size, opset,
                      int8_target=int8_target, calib_distilled=calib_distilled)
    cal = side["calibration"]
    click.echo(f"calibration/parity images: {cal['source']} ({cal['kind']})")
    if cal["kind"] == "generated" and "int8" in side["models"]:
        click.echo(click.style("WARNING: int8 calibrated on GENERATED images, not real faces; pass "
                               "--calib-distilled DIR (a `distill` output) or --calib-manifest M", fg="yellow"),
                   err=True)
    for prec, m in side["models"].items():
        par = m["parity_vs_torch"]
        click.echo(f"{prec:>5}: {out / m['file']}  {m['bytes'] / 1e6:.1f} MB  "
                   f"max|Δp|={par['max_abs_dprob']:.2e}  max cos dist={par['max_cosine_distance']:.2e}")
    click.echo(f"sidecar: {out / side.get('sidecar', SIDECAR)}")
