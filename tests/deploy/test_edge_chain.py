"""The edge path as one chain on generated data: export → engines → score → bench → predict.

Demo-sized (tiny untrained model, 32 px, a few dozen images) so it runs in CI without a GPU or
TensorRT: `engines` then writes the ONNX Runtime fallback models, which every later command
must find by the same names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_run import exit_code as run

from edgedistal.data.manifest import Manifest
from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint

SIZE = 32


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    """A demo-like folder: manifest, tiny detector.pt, and a distilled/ subset beside them."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("chain")
    meta = pd.read_csv(synth_dir / "metadata.csv")
    recs = [{"path": str(synth_dir / r.path), "label": int(r.label == "FAKE"), "group": r.group,
             "video": r.video, "frame": int(r.frame), "split": "test" if i % 3 == 0 else "train"}
            for i, r in enumerate(meta.itertuples())]
    Manifest.from_records(recs).save(root / "manifest.parquet")
    Manifest.from_records(recs[1::3][:40]).save(root / "distilled" / "distilled.parquet")
    torch.manual_seed(0)
    save_checkpoint(root / "detector.pt", Detector(DetectorConfig(backbone="resnet10t", image_size=SIZE)))
    return root


@pytest.fixture(scope="module")
def engines_dir(demo: Path) -> Path:
    assert run("export", "--checkpoint", demo / "detector.pt", "--out", demo / "export", "--calib-size", 32) == 0
    side = json.loads((demo / "export" / "export.json").read_text())
    assert side["calibration"]["kind"] == "distilled"  # found next to the checkpoint
    assert set(side["models"]) == {"fp32", "fp16", "int8"}
    out = demo / "engines"
    assert run("engines", "--export-dir", demo / "export", "--out", out, "--calib-size", 32) == 0
    return out


def test_engines_writes_every_precision_with_sidecars(engines_dir: Path) -> None:
    summary = json.loads((engines_dir / "engines.json").read_text())
    if summary["tensorrt"]:
        pytest.skip("TensorRT is installed here: engines, not ORT models")
    for prec in ("fp32", "fp16", "int8"):
        side = json.loads((engines_dir / f"model_{prec}.json").read_text())
        assert (engines_dir / f"model_{prec}.onnx").stat().st_size > 0
        assert side["identity"]["image_size"] == SIZE and side["runtime"] == "onnxruntime"
    int8 = json.loads((engines_dir / "model_int8.json").read_text())
    assert int8["int8_target"] == "cpu" and int8["calibration"]["kind"] == "distilled"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_score_from_engine_dir(demo: Path, engines_dir: Path, precision: str, capsys) -> None:
    out = demo / f"scores_{precision}"
    assert run("score", "--manifest", demo / "manifest.parquet", "--engine-dir", engines_dir,
               "--precision", precision, "--batch-size", 16, "--out", out) == 0
    assert len(pd.read_parquet(out / "scores.parquet")) == len(Manifest.load(demo / "manifest.parquet"))
    assert precision in capsys.readouterr().out


def test_bench_measures_what_engines_built(demo: Path, engines_dir: Path) -> None:
    out = demo / "bench"
    assert run("bench", "--manifest", demo / "manifest.parquet", "--checkpoint", demo / "detector.pt",
               "--engine-dir", engines_dir, "--backends", "onnxruntime,torch", "--batch", "1,4",
               "--warmup", 1, "--iters", 3, "--limit", 24, "--out", out) == 0
    report = json.loads((out / "bench.json").read_text())
    measured = {(r["backend"], r["precision"]) for r in report["rows"] if not r["skipped_reason"]}
    assert {("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"), ("torch", "fp32")} <= measured
    k = next(r["kernels"] for r in report["rows"] if r["backend"] == "onnxruntime" and r["precision"] == "int8")
    assert k["integer_nodes"] > 0 and k["float_compute_nodes"] == 0  # cpu target: all integer kernels
    assert report["artifacts"]["int8"]["calibration"]["kind"] == "distilled"
    assert report["environment"]["cpu_flags"] is not None
    md, page = (out / "bench.md").read_text(), (out / "bench.html").read_text()
    assert "Kernels ONNX Runtime runs" in md and "distilled" in md
    assert page.count("data:image/png;base64,") >= 2


def test_bench_that_measures_nothing_fails(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert run("bench", "--manifest", demo / "manifest.parquet", "--engine-dir", tmp_path / "empty",
               "--backends", "onnxruntime", "--batch", 1, "--iters", 2, "--out", tmp_path / "b") != 0


def test_checkpoint_and_engines_from_different_models_are_refused(demo: Path, engines_dir: Path,
                                                                   tmp_path: Path, capsys) -> None:
    torch.manual_seed(7)
    save_checkpoint(tmp_path / "other.pt", Detector(DetectorConfig(backbone="resnet10t", image_size=SIZE)))
    code = run("bench", "--manifest", demo / "manifest.parquet", "--checkpoint", tmp_path / "other.pt",
               "--engine-dir", engines_dir, "--batch", 1, "--iters", 2, "--out", tmp_path / "b")
    err = capsys.readouterr().err
    assert code == 2 and "different models" in err and len(err.strip().splitlines()) == 2  # error + fix


def test_predict_on_generated_images(demo: Path, engines_dir: Path, synth_dir: Path) -> None:
    out = demo / "pred.json"
    folder = next(p for p in (synth_dir / "fake").iterdir() if p.is_dir()) if any(
        p.is_dir() for p in (synth_dir / "fake").iterdir()) else synth_dir / "fake"
    assert run("predict", folder, "--engine-dir", engines_dir, "--precision", "int8", "--detector", "none",
               "--out", out) == 0
    doc = json.loads(out.read_text())
    assert doc["files"] and all(0.0 <= f["prob_fake"] <= 1.0 for f in doc["files"])
    assert all(f["faces"] == f["frames"] == 1 for f in doc["files"])  # images: one frame, crop = image
    assert doc["backend"]["precision"] == "int8"
