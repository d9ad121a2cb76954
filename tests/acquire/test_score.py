"""Batch scorer: row alignment of scores.parquet / embeddings.npy, streaming, cache, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from edgedistal.acquire.scorer import EMBEDDINGS_FILE, SCORES_FILE, score_images, score_manifest
from edgedistal.data.images import decode_batch, load_images
from edgedistal.data.manifest import Manifest
from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint
from edgedistal.runtime.base import BackendInfo
from edgedistal.runtime.torch_backend import TorchBackend

SIZE = 64


class PixelBackend:
    """Deterministic stand-in: prob and embedding are functions of each image's pixels."""

    image_size = SIZE

    def __init__(self) -> None:
        self.info = BackendInfo("fake", "cpu", "fp32")
        self.calls: list[int] = []

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(images))
        x = images.reshape(len(images), -1).astype(np.float32)
        return x.mean(1) / 255.0, np.stack([x[:, 0], x[:, 1], x[:, -1]], axis=1)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def manifest(synth_dir: Path) -> Manifest:
    df = pd.read_csv(synth_dir / "metadata.csv")
    df["path"] = [str(synth_dir / p) for p in df["path"]]
    df["label"] = (df["label"] == "FAKE").astype(int)
    return Manifest(df[["path", "label", "group", "video", "frame"]])


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(1)
    torch.set_num_threads(2)
    return Detector(DetectorConfig(backbone="resnet18", image_size=SIZE)).eval()


def test_score_images_keeps_order_across_chunks():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (50, SIZE, SIZE, 3), dtype=np.uint8)
    be = PixelBackend()
    p, e = score_images(imgs, be, batch_size=7, progress=False)
    ref_p, ref_e = PixelBackend().infer(imgs)
    np.testing.assert_allclose(p, ref_p, rtol=1e-6)
    np.testing.assert_array_equal(e, ref_e)
    assert be.calls == [7] * 7 + [1]


def test_score_manifest_writes_aligned_parquet_and_npy(manifest, detector, tmp_path):
    be = TorchBackend(detector, batch_size=32)
    res = score_manifest(manifest, be, tmp_path, batch_size=40, progress=False)
    table = pd.read_parquet(tmp_path / SCORES_FILE)
    emb = np.load(tmp_path / EMBEDDINGS_FILE, mmap_mode="r")
    assert list(table.columns) == ["sample_id", "prob", "least_confidence", "margin", "entropy", "label", "group"]
    assert table["sample_id"].tolist() == manifest.df["sample_id"].tolist()
    assert table["label"].tolist() == manifest.df["label"].tolist()
    assert table["group"].tolist() == manifest.df["group"].tolist()
    assert emb.shape == (len(manifest), detector.embed_dim) and emb.dtype == np.float32
    # row i of both files is image i of the manifest: recompute a few rows directly
    idx = np.array([0, 41, len(manifest) - 1])
    p, e = be.infer(decode_batch([manifest.paths[i] for i in idx], SIZE))
    np.testing.assert_allclose(table["prob"].to_numpy()[idx], p, atol=1e-5)
    np.testing.assert_allclose(emb[idx], e, atol=1e-4)
    pr = table["prob"].to_numpy()
    np.testing.assert_allclose(table["least_confidence"], 1 - np.maximum(pr, 1 - pr), atol=1e-5)
    assert (table["entropy"] >= 0).all()
    assert res.images_per_s > 0 and res.backend.name == "torch"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["embeddings.npy", "scores.json", "scores.parquet"]


def test_score_manifest_reads_the_image_cache(manifest, monkeypatch):
    cached = load_images(manifest.paths, SIZE)  # builds the uint8 cache
    import edgedistal.data.images as im

    def no_decode(*a, **k):
        raise AssertionError("decoded although the cache exists")

    monkeypatch.setattr(im, "decode_batch", no_decode)
    res = score_manifest(manifest, PixelBackend(), None, batch_size=64, progress=False)
    ref_p, _ = PixelBackend().infer(np.asarray(cached))
    np.testing.assert_allclose(res.table["prob"].to_numpy(), ref_p, rtol=1e-6)


def test_score_manifest_reports_unreadable_files(manifest, tmp_path):
    from edgedistal.errors import EdgedistalError

    df = manifest.df.copy()
    df.loc[5, "path"] = str(tmp_path / "missing.png")
    with pytest.raises(EdgedistalError, match="missing.png"):
        score_manifest(Manifest(df), PixelBackend(), tmp_path / "out", batch_size=16, progress=False,
                       use_cache=False)
    assert not (tmp_path / "out" / SCORES_FILE).exists()


def test_score_cli_says_which_backend(manifest, detector, tmp_path):
    from click.testing import CliRunner

    from edgedistal.commands.score import score

    manifest.take(np.arange(20)).save(tmp_path / "m.parquet")
    save_checkpoint(tmp_path / "ck.pt", detector)
    result = CliRunner().invoke(score, ["--manifest", str(tmp_path / "m.parquet"), "--checkpoint",
                                       str(tmp_path / "ck.pt"), "--batch-size", "8", "--out",
                                       str(tmp_path / "scores")])
    assert result.exit_code == 0, result.output
    assert "backend: torch on cpu" in result.output
    assert len(pd.read_parquet(tmp_path / "scores" / SCORES_FILE)) == 20
