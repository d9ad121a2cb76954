"""The embedder as a first-class model: export beside the detector, engines, score through backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_run import exit_code as run

from edgedistal.data.manifest import Manifest

SIZE = 32


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    """A manifest and a tiny embedder (random init saved as embedder.pt: export does not care)."""
    from edgedistal.data.split import group_split
    from edgedistal.models.embedder import build_embedder, save_embedder
    from edgedistal.models.registry import DetectorConfig
    from edgedistal.runtime.artifacts import detector_identity

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("emb_chain")
    meta = pd.read_csv(synth_dir / "metadata.csv")
    recs = [{"path": str(synth_dir / r.path), "label": int(r.label == "FAKE"), "group": r.group,
             "video": r.video, "frame": int(r.frame)} for r in meta.itertuples()]
    group_split(Manifest.from_records(recs), (0.6, 0.2, 0.2), seed=0).save(root / "manifest.parquet")
    model = build_embedder(DetectorConfig(backbone="resnet10t", image_size=SIZE)).eval()
    save_embedder(root / "embedder.pt", model, detector_identity(model))
    assert run("export", "--checkpoint", root / "embedder.pt", "-o", root / "export", "--precisions", "fp32,fp16",
               "--threads", "1") == 0
    return root


def test_export_writes_embedder_files_with_parity(chain: Path) -> None:
    side = json.loads((chain / "export" / "embedder.json").read_text())
    assert side["kind"] == "embedder" and side["identity"]["kind"] == "embedder"
    assert (chain / "export" / "embedder_fp32.onnx").exists() and not (chain / "export" / "model_fp32.onnx").exists()
    for prec, cos in (("fp32", 1e-5), ("fp16", 1e-2)):
        par = side["models"][prec]["parity_vs_torch"]
        assert par["max_cosine_distance"] < cos
        assert par["max_abs_dprob"] == 0.0  # NaN on both sides: the embedder has no probability


def test_score_writes_embeddings_through_torch_and_ort(chain: Path) -> None:
    from edgedistal.acquire.scorer import read_scores

    assert run("score", "--manifest", chain / "manifest.parquet", "--checkpoint", chain / "embedder.pt",
               "--device", "cpu", "--threads", "1", "-o", chain / "s_torch") == 0
    assert run("score", "--manifest", chain / "manifest.parquet", "--onnx-dir", chain / "export",
               "--backend", "onnxruntime", "--device", "cpu", "--threads", "1", "-o", chain / "s_ort") == 0
    t1, e1 = read_scores(chain / "s_torch")
    t2, e2 = read_scores(chain / "s_ort")
    assert len(t1) == len(Manifest.load(chain / "manifest.parquet")) and e1.shape[1] == 512
    assert t1["prob"].isna().all() and t2["prob"].isna().all()
    assert np.abs(np.asarray(e1) - np.asarray(e2)).max() < 1e-4
    assert json.loads((chain / "s_ort" / "scores.json").read_text())["model_kind"] == "embedder"


def test_engines_handle_the_embedder_and_kinds_are_checked(chain: Path, capsys) -> None:
    assert run("engines", "--export-dir", chain / "export", "-o", chain / "engines", "--device", "cpu",
               "--precisions", "fp32", "--threads", "1") == 0
    assert (chain / "engines" / "embedder_fp32.onnx").exists()
    assert (chain / "engines" / "embedder_engines.json").exists()
    code = run("score", "--manifest", chain / "manifest.parquet", "--checkpoint", chain / "embedder.pt",
               "--model", "detector", "-o", chain / "s_bad")
    err = capsys.readouterr().err
    assert code == 2 and "embedder checkpoint" in err and "Traceback" not in err
