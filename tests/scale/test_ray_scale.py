"""`extract --ray` / `score --ray` on a local Ray (2 CPUs): outputs identical to the
single-process run, also when a worker is killed mid-run, and an interrupted run resumes."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from edgedistal.acquire.scorer import EMBEDDINGS_FILE, SCORES_FILE
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.extract.run import ExtractConfig, run_extract

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from edgedistal.scale.ray_jobs import ray_extract, ray_score  # noqa: E402

CFG = ExtractConfig(frames=2, size=64)
SIZE = 64
VIDEOS = ["Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-real/id0_0001.mp4"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_single_process_path_imports_no_ray() -> None:
    code = ("import sys, edgedistal.cli, edgedistal.extract.run, edgedistal.acquire.scorer, edgedistal.scale, "
            "edgedistal.commands.extract, edgedistal.commands.score; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def celeb(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """Three Celeb-DF sample videos (real and fake) extracted to tmp, plus a junk and a missing file."""
    from edgedistal.data.archive import shared_datasets_dir

    base = shared_datasets_dir()
    if base is None or not (base / "celebdf-v2-sample.tar").exists():
        pytest.skip("celebdf-v2-sample.tar not in the shared datasets folder")
    root = tmp_path_factory.mktemp("celeb")
    with tarfile.open(base / "celebdf-v2-sample.tar") as tf:
        for v in VIDEOS:
            tf.extract(f"celebdf-v2-sample/{v}", root, filter="data")
    rows = []
    for v in VIDEOS:
        path = root / "celebdf-v2-sample" / v
        rows.append({"path": str(path), "label": int("synthesis" in v), "group": path.stem.split("_")[0],
                     "video": path.stem, "source": "celebdf", "media": "video"})
    (root / "junk.mp4").write_bytes(b"not a video" * 50)
    for name in ("junk", "missing"):
        rows.append({"path": str(root / f"{name}.mp4"), "label": 1, "group": name, "video": name,
                     "source": "celebdf", "media": "video"})
    return Manifest.from_records(rows)


@pytest.fixture(scope="module")
def single(celeb: Manifest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("single")
    return run_extract(celeb, out, CFG, workers=0), out


def _same_extract(res, out: Path, ref, ref_out: Path) -> None:
    """Same manifest rows and order, same failures and per-video table, same crop bytes."""
    def rel(r, o):
        df = r.manifest.df.copy()
        df["path"] = [str(Path(p).relative_to(o.resolve())) for p in df["path"]]
        return df

    pd.testing.assert_frame_equal(rel(res, out), rel(ref, ref_out))
    pd.testing.assert_frame_equal(res.failures, ref.failures)
    pd.testing.assert_frame_equal(res.videos, ref.videos)
    assert len(ref.manifest) == 6 and len(ref.failures) == 2  # 3 videos x 2 frames; junk, missing
    for a, b in zip(res.manifest.paths, ref.manifest.paths, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    for name in ("failures.csv", "videos.csv"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes()
    assert not (out / ".ray").exists()


def test_extract_on_ray_with_a_killed_worker_matches_single_process(local_ray, celeb, single, tmp_path):
    ref, ref_out = single
    out = tmp_path / "ray"
    # 2 videos per shard: one worker is SIGKILLed after the first video of its shard
    res = ray_extract(celeb, out, CFG, actors=2, shard_size=2, die_once=tmp_path / "die")
    assert (tmp_path / "die").exists()
    stats = res.extra["ray"]
    assert stats["retries"] >= 1 and stats["actor_restarts"] >= 1 and stats["shards_run"] == 2
    _same_extract(res, out, ref, ref_out)


def test_extract_resumes_an_interrupted_ray_run(local_ray, celeb, single, tmp_path):
    ref, ref_out = single
    out = tmp_path / "ray"
    # retries=0: the shard whose worker was killed stops the job, as a lost cluster would
    with pytest.raises(EdgedistalError, match="killed its Ray worker"):
        ray_extract(celeb, out, CFG, actors=1, shard_size=1, retries=0, die_once=tmp_path / "die")
    done = {p.name: p.stat().st_mtime_ns for p in (out / "done").glob("*.json")}
    assert 1 <= len(done) < 4
    res = ray_extract(celeb, out, CFG, actors=2, shard_size=1)
    stats = res.extra["ray"]
    assert stats["shards_skipped"] == len(done) and stats["shards_run"] == 4 - len(done)
    assert stats["retries"] == 0 and res.skipped == len(done)
    for name, mtime in done.items():  # finished shards were not redone
        assert (out / "done" / name).stat().st_mtime_ns == mtime
    _same_extract(res, out, ref, ref_out)


# -- score --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The generated pool as a manifest, a small torch checkpoint and its single-process scores."""
    from edgedistal.acquire.scorer import score_manifest
    from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint
    from edgedistal.runtime.select import get_backend

    df = pd.read_csv(synth_dir / "metadata.csv")
    df["path"] = [str(synth_dir / p) for p in df["path"]]
    df["label"] = (df["label"] == "FAKE").astype(int)
    m = Manifest(df[["path", "label", "group", "video", "frame"]]).take(list(range(64)))
    root = tmp_path_factory.mktemp("pool")
    torch.manual_seed(2)
    ckpt = save_checkpoint(root / "detector.pt", Detector(DetectorConfig(backbone="resnet18", image_size=SIZE)))
    kwargs = {"name": "torch", "precision": "fp32", "checkpoint": str(ckpt), "device": "cpu", "batch_size": 16}
    with get_backend(**kwargs) as be:
        score_manifest(m, be, root / "single", batch_size=16, progress=False, use_cache=False)
    return m, kwargs, root / "single"


def _same_scores(out: Path, ref: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_parquet(out / SCORES_FILE), pd.read_parquet(ref / SCORES_FILE))
    np.testing.assert_array_equal(np.load(out / EMBEDDINGS_FILE), np.load(ref / EMBEDDINGS_FILE))
    assert not (out / ".ray").exists()  # merged shards removed


def test_score_on_ray_with_a_killed_worker_matches_single_process(local_ray, pool, tmp_path):
    m, kwargs, ref = pool
    assert len(m) == 64
    summary = ray_score(m, tmp_path / "ray", kwargs, batch_size=16, shard_batches=1, actors=2,
                        die_once=tmp_path / "die")
    assert (tmp_path / "die").exists()
    stats = summary["ray"]
    assert stats["shards"] == 4 and stats["retries"] >= 1 and stats["actor_restarts"] >= 1
    assert summary["backend"]["name"] == "torch" and summary["embedding_dim"] == 512
    _same_scores(tmp_path / "ray", ref)


def test_score_resumes_an_interrupted_ray_run_and_cli(local_ray, pool, tmp_path):
    from edgedistal.commands.score import score

    m, kwargs, ref = pool
    out = tmp_path / "ray"
    with pytest.raises(EdgedistalError, match="killed its Ray worker"):
        ray_score(m, out, kwargs, batch_size=16, shard_batches=1, actors=1, retries=0,
                  die_once=tmp_path / "die")
    shards = {p.name: p.stat().st_mtime_ns for p in (out / ".ray" / "score").glob("*.npz")}
    assert 1 <= len(shards) < 4
    mpath = m.save(tmp_path / "pool.parquet")
    r = CliRunner().invoke(score, ["--manifest", str(mpath), "--checkpoint", kwargs["checkpoint"],
                                   "--backend", "torch", "--device", "cpu", "--batch-size", "16",
                                   "--ray", "--ray-shard", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    # a shard in flight when the worker died may land after the count above: done can only grow
    ran, done = map(int, re.search(r"(\d+) shard\(s\) run, (\d+) already done", r.output).groups())
    assert ran + done == 4 and done >= len(shards), r.output
    assert "0 retried shard(s)" in r.output
    _same_scores(out, ref)
