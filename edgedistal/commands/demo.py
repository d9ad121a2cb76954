"""`edgedistal demo`: the whole pipeline on a generated dataset."""

from __future__ import annotations

import time
from dataclasses import replace

import click

from edgedistal.commands.options import DEVICE, POSITIVE


@click.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Output folder (re-running resumes and skips finished stages).")
@click.option("--quick", is_flag=True, help="Tiny sizes (seconds, for smoke tests).")
@click.option("--device", default="auto", show_default=True, type=DEVICE, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=POSITIVE, default=None,
              help="CPU threads for torch (default: torch's choice); for shared machines.")
def demo(out: str, quick: bool, device: str, threads: int | None) -> None:
    """Generate a deepfake dataset, distil it, evaluate, report and export the detector.

    Stages: generate → ingest → split → distill → evaluate (distilled vs random vs full)
    → report → train on the distilled set → export ONNX (fp32, fp16, int8).
    """
    from edgedistal.demo import QUICK, DemoConfig, run_demo
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out)
    if threads:
        import torch

        torch.set_num_threads(threads)  # every stage runs in this process, so this caps them all
    cfg = replace(QUICK if quick else DemoConfig(), device=device)
    t0 = time.perf_counter()
    s = run_demo(out, cfg)
    click.echo("")
    click.echo(f"distilled {s['distilled_rows']} of {s['pool_rows']} pool samples -> {s['distilled']}")
    if s.get("conclusion"):
        click.echo(f"result: {s['conclusion']}")
    click.echo(f"stage times (s): {s['timings_s']}")
    click.echo(f"detector trained on the distilled set: {s['detector']} (ONNX in {s['export_dir']})")
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s")
    click.echo(f"report: {s['report_html']}")
