"""`edgedistal score`: stream a pool through a backend → scores.parquet + embeddings.npy."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import (
    POSITIVE,
    device_option,
    examples,
    out_option,
    ray_options,
    threads_option,
)
from edgedistal.runtime.base import TORCH_PRECISIONS
from edgedistal.runtime.select import ORDER as BACKEND_ORDER

EXAMPLES = examples('''
# the fp16 ONNX model from `export`, on the best backend here
edgedistal score --manifest manifest.parquet --onnx-dir export --precision fp16 -o scores/
# the PyTorch checkpoint on the CPU, only the train split
edgedistal score --manifest manifest.parquet --checkpoint runs/det/detector.pt --split train \\
    --device cpu --threads 4 -o scores_train/
# the embedder (checkpoint or its embedder_<p>.onnx in export/): embeddings for `distill --scores`
edgedistal score --manifest manifest.parquet --checkpoint runs/emb/embedder.pt -o emb_scores/
edgedistal score --manifest manifest.parquet --onnx-dir export --model embedder -o emb_scores/
''')


@click.command(epilog=EXAMPLES)
@click.option("--manifest", "-m", required=True, type=click.Path(path_type=Path), help="Manifest of the pool (`ingest` or `extract`).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A `train` detector or `pretrain` embedder (.pt), run with PyTorch.")
@click.option("--onnx-dir", type=click.Path(path_type=Path), default=None, help="Folder from `export`.")
@click.option("--engine-dir", type=click.Path(path_type=Path), default=None, help="Folder from `engines`.")
@click.option("--precision", "--engine", "precision", default="fp32", show_default=True,
              type=click.Choice(TORCH_PRECISIONS),
              help="Precision: model_<precision>.{engine,onnx} from --engine-dir / --onnx-dir.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(("auto", *BACKEND_ORDER)),
              help="Runtime; auto: the first of tensorrt, onnxruntime-gpu, torch-cuda, onnxruntime, torch that "
                   "the given files and this machine allow.")
@click.option("--model", "model_kind", default="auto", show_default=True,
              type=click.Choice(["auto", "detector", "embedder"]),
              help="Which model of the folders to run; auto: the checkpoint's kind, else the detector "
                   "(model_<p>) when the folders hold one, else the embedder (embedder_<p>). An embedder "
                   "writes embeddings and NaN probabilities.")
@device_option()
@threads_option()
@click.option("--batch-size", default=256, show_default=True, type=POSITIVE, help="Images per backend call.")
@click.option("--micro-batch", default=None, type=POSITIVE, help="Backend batch (default: --batch-size).")
@click.option("--cuda-graphs", is_flag=True, help="torch-cuda: replay a captured CUDA graph.")
@click.option("--split", default=None, help="Score only this split (train/val/test).")
@out_option(required=True, help="Folder for scores.parquet, embeddings.npy, scores.json.")
@ray_options("Backend chunks (--batch-size rows) per Ray shard [default: about 4096 rows].")
def score(manifest: Path, checkpoint: Path | None, onnx_dir: Path | None, engine_dir: Path | None,
          precision: str, model_kind: str, backend: str, device: str, threads: int | None, batch_size: int,
          micro_batch: int | None, cuda_graphs: bool, split: str | None, out: Path, ray_address: str | None,
          ray_actors: int | None, ray_shard: int | None) -> None:
    """Fake probabilities, uncertainty and embeddings for every row of a manifest.

    With --ray each Ray actor builds the backend once and scores shards of rows; scores.parquet
    and embeddings.npy are the same as without it (same backend and batch size).
    """
    from edgedistal.acquire.scorer import score_manifest
    from edgedistal.data.manifest import Manifest
    from edgedistal.errors import EdgedistalError
    from edgedistal.runtime.artifacts import check_artifacts
    from edgedistal.runtime.select import BackendSpec
    from edgedistal.utils.io import check_output_dir

    if checkpoint is None and onnx_dir is None and engine_dir is None:
        raise EdgedistalError("nothing to score with", "pass --checkpoint, --onnx-dir or --engine-dir")
    check_output_dir(out)
    prefix = _prefix(model_kind, precision, checkpoint, onnx_dir, engine_dir)
    check_artifacts([precision], onnx_dir, engine_dir, checkpoint, prefix)  # refuse mismatched models
    m = Manifest.load(manifest)
    if split:
        m = m.split(split)
    spec = BackendSpec(backend, precision, checkpoint=checkpoint, onnx_dir=onnx_dir, engine_dir=engine_dir,
                       device=device, batch_size=micro_batch or batch_size, cuda_graphs=cuda_graphs, prefix=prefix)
    if ray_address is not None:
        from edgedistal.commands.extract import ray_summary
        from edgedistal.scale.ray_jobs import ray_score

        summary = ray_score(m, out, spec.fields(), batch_size=batch_size, address=ray_address, actors=ray_actors,
                            shard_batches=ray_shard)
        b = summary["backend"]
        click.echo(f"backend: {b['name']} on {b['device']} ({b['precision']}; {b['detail']})")
        click.echo(ray_summary(summary["ray"], "row"))
        click.echo(f"scored {len(m):,} images at {summary['images_per_s']:,.1f} images/s → {out}/scores.parquet, "
                   f"{out}/embeddings.npy [{len(m)}x{summary['embedding_dim']}]")
        return
    with spec.open() as be:
        click.echo(f"backend: {be.info.name} on {be.info.device} ({be.info.precision}; {be.info.detail})")
        res = score_manifest(m, be, out, batch_size=batch_size, progress=True)
    click.echo(f"scored {len(m):,} images at {res.images_per_s:,.1f} images/s → {out}/scores.parquet, "
               f"{out}/embeddings.npy [{res.embeddings.shape[0]}x{res.embeddings.shape[1]}]")


def _prefix(kind: str, precision: str, checkpoint: Path | None, onnx_dir: Path | None, engine_dir: Path | None) -> str:
    """The artifact prefix to serve: ``model`` (detector) or ``embedder``; a checkpoint of the
    other kind than asked for is refused with one line."""
    from edgedistal.errors import EdgedistalError
    from edgedistal.models.embedder import is_embedder_checkpoint
    from edgedistal.runtime.artifacts import resolve

    if checkpoint is not None and Path(checkpoint).exists():
        ckpt_kind = "embedder" if is_embedder_checkpoint(checkpoint) else "detector"
        if kind not in ("auto", ckpt_kind):
            raise EdgedistalError(f"{checkpoint} is {'an' if ckpt_kind == 'embedder' else 'a'} {ckpt_kind} checkpoint, but --model {kind} was asked for",
                                  f"pass --model {ckpt_kind} (or auto), or the {kind}'s checkpoint")
        kind = ckpt_kind
    if kind == "auto":
        has_detector = resolve(precision, onnx_dir, engine_dir, "model") is not None
        has_embedder = resolve(precision, onnx_dir, engine_dir, "embedder") is not None
        kind = "embedder" if has_embedder and not has_detector else "detector"
    return "embedder" if kind == "embedder" else "model"
