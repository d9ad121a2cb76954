"""`edgedistal bench`: latency/accuracy report per backend × precision × batch."""

from __future__ import annotations

import re
from pathlib import Path

import click

from edgedistal.commands.options import device_option, examples, out_option, threads_option
from edgedistal.errors import EdgedistalError
from edgedistal.runtime.base import PRECISIONS

EXAMPLES = examples('''
# what `make engines` built, on the demo data (what `make bench` runs)
edgedistal bench --demo --demo-dir demo_out --engine-dir engines --iters 50 -o demo_out/bench
# PyTorch vs ONNX Runtime on one core, batch 1 and 32, each row timed for 2 s
edgedistal bench --manifest manifest.parquet --checkpoint runs/det/detector.pt --onnx-dir export \\
    --batch 1,32 --min-time 2s --threads 1 -o reports/bench
''')

DEMO_DIR = Path("demo_out")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*(ms|s|m)?\s*", value)
    if not m:
        raise EdgedistalError(f"bad --min-time {value!r}", "use e.g. 2s, 500ms or 1m")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    return float(m.group(1)) * scale


@click.command("bench", epilog=EXAMPLES)
@click.option("--manifest", "-m", type=click.Path(dir_okay=False), help="Labelled manifest (Parquet/CSV).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Detector checkpoint (torch backends).")
@click.option("--onnx-dir", type=click.Path(file_okay=False), help="Folder from `edgedistal export` (ORT).")
@click.option("--engine-dir", type=click.Path(file_okay=False),
              help="Folder from `edgedistal engines` (TensorRT engines, or the ONNX Runtime fallback models).")
@click.option("--demo", is_flag=True, help="Use DEMO_DIR/manifest.parquet + DEMO_DIR/detector.pt from `make demo`.")
@click.option("--demo-dir", type=click.Path(file_okay=False), default=str(DEMO_DIR), show_default=True,
              help="Where `make demo` wrote its outputs (with --demo).")
@click.option("--backends", default="auto", show_default=True, help="auto, all, or a comma list (torch,onnxruntime,...).")
@click.option("--precisions", default=",".join(PRECISIONS), show_default=True, help="Comma list of fp32, fp16, int8.")
@click.option("--batch", "batches", default="1,8,32", show_default=True, help="Comma list of batch sizes.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(min=0), help="Untimed calls before each row.")
@click.option("--iters", default=100, show_default=True, type=click.IntRange(min=1), help="Timed calls per row.")
@click.option("--min-time", default=None, help="Time each row for at least this long instead (e.g. 2s).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(min=1),
              help="Time everything this many times; ≥2 adds a p50/p99 stability comparison.")
@click.option("--profile", type=click.Choice(["default", "jetson"]), default="default", show_default=True,
              help="jetson: batch 1, fp16+int8, workspace cap, Orin Nano/NX ESTIMATE from FLOPs.")
@click.option("--workspace-mb", type=int, default=None, help="TensorRT workspace cap (MiB) where an engine is built at load time (ONNX Runtime's "
                   "TensorRT EP); prebuilt engines keep `engines --workspace-mb`.")
@click.option("--split", default="test", show_default=True, help="Manifest split to score (all rows if absent).")
@click.option("--limit", default=512, show_default=True, type=click.IntRange(min=0),
              help="At most this many images (0: all).")
@device_option()
@threads_option("bench also pins the process to N cores, so timings do not move between cores.")
@click.option("--cuda-graphs", is_flag=True, help="Ask torch-cuda to capture CUDA graphs.")
@click.option("--note", "notes", multiple=True, help="A line for the report's header (e.g. how the model was trained).")
@out_option("out_dir", default="reports/bench", file_okay=False, help="Folder for bench.json, bench.md, bench.html.")
def bench(
    manifest: str | None, checkpoint: str | None, onnx_dir: str | None, engine_dir: str | None, demo: bool, demo_dir: str,
    backends: str, precisions: str, batches: str, warmup: int, iters: int, min_time: str | None,
    repeat: int, profile: str, workspace_mb: int | None, split: str, limit: int, device: str,
    cuda_graphs: bool, threads: int | None, notes: tuple[str, ...], out_dir: Path,
) -> None:
    """Latency percentiles, throughput, memory and accuracy drift per backend × precision × batch."""
    from edgedistal.bench.jetson import jetson_profile
    from edgedistal.bench.report import _ips, headlines, noise_warnings, write_report
    from edgedistal.bench.run import BenchConfig, bench_files
    from edgedistal.commands.show import warn
    from edgedistal.utils.io import check_output_dir

    check_output_dir(out_dir)
    if demo:
        root = Path(demo_dir)
        manifest = manifest or str(root / "manifest.parquet")
        checkpoint = checkpoint or str(root / "detector.pt")
        if onnx_dir is None and engine_dir is None and (root / "export" / "export.json").is_file():
            onnx_dir = str(root / "export")
        missing = [p for p in (manifest, checkpoint) if not Path(p).exists()]
        if missing:
            raise EdgedistalError(f"{', '.join(missing)}: demo outputs not found", "run `make demo` first")
    if not manifest:
        raise EdgedistalError("no --manifest given", "pass --manifest M (or --demo after `make demo`)")
    try:
        batch_list = [int(b) for b in _csv(batches)]
    except ValueError as exc:
        raise EdgedistalError(f"bad --batch {batches!r}", "use a comma list of integers, e.g. 1,8,32") from exc
    config = BenchConfig(
        backends=_csv(backends), precisions=_csv(precisions), batches=batch_list, warmup=warmup,
        iters=iters, min_time_s=_seconds(min_time), repeat=repeat, workspace_mb=workspace_mb,
    )
    if profile == "jetson":
        config = jetson_profile(config)
    report = bench_files(
        manifest, config, checkpoint=checkpoint, onnx_dir=onnx_dir, engine_dir=engine_dir, device=device,
        split=split or None, limit=limit or None, cuda_graphs=cuda_graphs, threads=threads,
        log=lambda m: click.echo(m, err=True),
    )
    if notes:
        report["notes"] = list(notes)
    files = write_report(report, out_dir)
    measured = sum(1 for r in report["rows"] if not r["skipped_reason"])
    click.echo(f"{measured} rows measured, {len(report['rows']) - measured} skipped → {files['markdown']}, "
               f"{files.get('html', '')}")
    estimated = bool((report.get("jetson_estimate") or {}).get("rows"))  # the jetson profile's product
    if measured == 0 and not estimated:
        reasons = sorted({r["skipped_reason"] for r in report["rows"]})
        raise EdgedistalError(
            f"bench measured nothing ({len(report['rows'])} rows skipped: {'; '.join(reasons)[:300]})",
            "pass artifacts that exist: --checkpoint, --onnx-dir export/ or --engine-dir engines/ "
            "(run `make engines`), and precisions they hold",
        )
    for r in report["rows"]:
        if not r["skipped_reason"]:
            lat = r["latency_ms"]
            click.echo(f"  {r['backend']:<16} {r['precision']:<5} b={r['batch']:<3} p50 {lat['p50']:.3g} ms "
                       f"p99 {lat['p99']:.3g} ms  {_ips(r['throughput_ips'])} img/s")
    for line in headlines(report):
        click.echo(line)
    for line in noise_warnings(report):
        warn(line)
    st = report.get("stability")
    if st:
        click.echo(f"stability (p50/p99 within {st['tolerance']:.0%}): {'yes' if st['all_stable'] else 'NO'}")
