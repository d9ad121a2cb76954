"""Selection in the embedder's space (`distill --embedder`) and detectors started from it (`--init`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_run import exit_code as run

from edgedistal.data.manifest import Manifest

SIZE = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    from edgedistal.data.split import group_split
    from edgedistal.models.embedder import build_embedder, save_embedder
    from edgedistal.models.registry import DetectorConfig
    from edgedistal.runtime.artifacts import detector_identity

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("emb_sel")
    meta = pd.read_csv(synth_dir / "metadata.csv")
    recs = [{"path": str(synth_dir / r.path), "label": int(r.label == "FAKE"), "group": r.group,
             "video": r.video, "frame": int(r.frame)} for r in meta.itertuples()]
    group_split(Manifest.from_records(recs), (0.6, 0.2, 0.2), seed=0).save(root / "manifest.parquet")
    model = build_embedder(DetectorConfig(backbone="resnet10t", image_size=SIZE)).eval()
    save_embedder(root / "embedder.pt", model, detector_identity(model))
    return root


@pytest.mark.parametrize("strategy", ["balanced+typiclust", "balanced+groupcap+probcover", "kcenter"])
def test_distill_embedder_selects_in_its_space(setup: Path, strategy: str) -> None:
    out = setup / f"d_{strategy.replace('+', '_')}"
    assert run("distill", "--manifest", setup / "manifest.parquet", "--embedder", setup / "embedder.pt",
               "--strategy", strategy, "--budget", 20, "--seed-size", 6, "--device", "cpu", "--threads", 1,
               "-o", out) == 0
    picked = pd.read_parquet(out / "distilled.parquet")
    assert len(picked) == 20 and picked["sample_id"].is_unique
    assert set(picked["split"]) == {"train"}
    if strategy.startswith("balanced"):
        assert (picked["label"] == 0).sum() >= 8  # the quota over the whole budget; real is the scarce class
    assert pd.read_parquet(out / "scores" / "scores.parquet")["prob"].isna().all()


def test_uncertainty_on_embedder_scores_is_refused(setup: Path, capsys) -> None:
    code = run("distill", "--manifest", setup / "manifest.parquet", "--embedder", setup / "embedder.pt",
               "--strategy", "hybrid", "--budget", 20, "--device", "cpu", "-o", setup / "d_bad")
    err = capsys.readouterr().err
    assert code == 2 and "needs probabilities" in err and "Traceback" not in err
    assert not (setup / "d_bad" / "scores").exists()  # refused before scoring the pool


def test_uncertainty_on_embedder_score_folders_is_refused(setup: Path, capsys) -> None:
    assert run("score", "--manifest", setup / "manifest.parquet", "--checkpoint", setup / "embedder.pt",
               "--device", "cpu", "--threads", 1, "-o", setup / "s_emb") == 0
    code = run("distill", "--manifest", setup / "manifest.parquet", "--scores", setup / "s_emb",
               "--strategy", "balanced+uncertainty", "--budget", 20, "-o", setup / "d_bad2")
    err = capsys.readouterr().err
    assert code == 2 and "needs probabilities" in err


def test_lightly_peer_selects_on_embedder_scores_with_labels(setup: Path, capsys) -> None:
    """The peer arm (lightly-mundig) balances by the dataset's labels, so embedder scores suffice;
    without labels it would balance on probabilities, which embedder scores lack: refused."""
    pytest.importorskip("lightly_mundig")
    scores = setup / "s_emb_peer"
    assert run("score", "--manifest", setup / "manifest.parquet", "--checkpoint", setup / "embedder.pt",
               "--device", "cpu", "--threads", 1, "-o", scores) == 0
    out = setup / "d_mundig"
    assert run("distill", "--manifest", setup / "manifest.parquet", "--scores", scores, "--strategy", "mundig",
               "--budget", 20, "--seed-size", 6, "-o", out) == 0
    picked = pd.read_parquet(out / "distilled.parquet")
    assert len(picked) == 20 and (picked["label"] == 0).sum() >= 8
    code = run("distill", "--manifest", setup / "manifest.parquet", "--scores", scores, "--strategy", "mundig",
               "--no-label-aware", "--budget", 20, "-o", setup / "d_mundig_nolabels")
    assert code == 2 and "no-label-aware" in capsys.readouterr().err


def test_train_init_loads_the_embedder_backbone(setup: Path) -> None:
    from edgedistal.models.embedder import load_embedder
    from edgedistal.models.train import TrainConfig, _prepare_model

    emb, _ = load_embedder(setup / "embedder.pt")
    cfg = TrainConfig(backbone="resnet10t", image_size=SIZE, init=str(setup / "embedder.pt"))
    det, _, _ = _prepare_model(None, cfg, torch.device("cpu"))
    a, b = det.backbone.state_dict(), emb.backbone.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    plain, _, _ = _prepare_model(None, TrainConfig(backbone="resnet10t", image_size=SIZE), torch.device("cpu"))
    assert not all(torch.equal(plain.backbone.state_dict()[k], b[k]) for k in b)


def test_init_is_part_of_the_cell_fingerprint(setup: Path) -> None:
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import EvalConfig, train_fingerprint

    base = train_fingerprint(TrainConfig(), EvalConfig())
    assert "init" not in base["train"]  # cells made before --init keep their fingerprints
    init = train_fingerprint(TrainConfig(init=str(setup / "embedder.pt")), EvalConfig())
    assert len(init["train"]["init"]) == 64 and init != base


def test_init_with_another_backbone_is_one_line(setup: Path, capsys) -> None:
    code = run("train", "-m", setup / "manifest.parquet", "--init", setup / "embedder.pt", "--backbone", "resnet18",
               "-o", setup / "t_bad", "--device", "cpu")
    err = capsys.readouterr().err
    assert code == 2 and "differs from --backbone" in err
