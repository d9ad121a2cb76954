"""`edgedistal demo`: the whole pipeline on a generated dataset."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import click

from edgedistal.commands.options import device_option, examples, out_option, threads_option

EXAMPLES = examples('''
# the whole pipeline into demo_out/ (what `make demo` runs); re-running resumes
edgedistal demo -o demo_out
# every arm in the evaluation, even on a CPU without fast bf16 (slower there: ~5 min)
edgedistal demo -o demo_out --eval-size full
# seconds-long smoke test on the CPU with one thread
edgedistal demo --quick -o /tmp/demo --device cpu --threads 1
''')


@click.command(epilog=EXAMPLES)
@out_option(default="demo_out", file_okay=False,
            help="Output folder (re-running resumes and skips finished stages).")
@click.option("--quick", is_flag=True, help="Tiny sizes (seconds, for smoke tests).")
@device_option()
@threads_option("Every stage runs in this process, so the cap holds for all of them.")
@click.option("--eval-size", type=click.Choice(["auto", "full", "lite"]), default="auto", show_default=True,
              help="The evaluation stage: full (every arm), lite (no embedder-space arm, one full-pool run; "
                   "about a third fewer training steps), auto (lite on a CPU without fast bf16, where training is "
                   "~2x slower).")
def demo(out: Path, quick: bool, device: str, threads: int | None, eval_size: str) -> None:
    """Generate a deepfake dataset, distil it, evaluate, report and export the detector.

    Stages: generate → ingest → split → distill → evaluate (vs random / balanced / stratified / full)
    → report → train on the distilled set → export ONNX (fp32, fp16, int8).
    """
    from edgedistal.pipeline.demo import QUICK, DemoConfig, run_demo, sized_for_machine
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out)
    cfg, why = sized_for_machine(replace(QUICK if quick else DemoConfig(), device=device),
                                 "full" if quick and eval_size == "auto" else eval_size)
    if why:
        click.echo(f"[demo] {why}")
    t0 = time.perf_counter()
    s = run_demo(out, cfg, log=click.echo)
    click.echo("")
    click.echo(f"distilled {s['distilled_rows']} of {s['pool_rows']} pool samples -> {s['distilled']}")
    if s.get("conclusion"):
        click.echo(f"result: {s['conclusion']}")
    click.echo(f"stage times (s): {s['timings_s']}")
    click.echo(f"detector trained on the distilled set: {s['detector']} (ONNX in {s['export_dir']})")
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s")
    click.echo(f"report: {s['report_html']}")
