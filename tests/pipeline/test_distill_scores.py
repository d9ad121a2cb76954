"""`distill --scores`: a pool scored once by `edgedistal score` feeds the selection loop.

The chain a user runs: train a detector → export ONNX → `score` the pool with ONNX Runtime fp32
→ `distill --scores`. It must pick what `distill --checkpoint` picks (the same detector scoring
the pool here through the torch backend and the same scorer). ORT and torch fp32 agree to ~1e-6,
far below any gap the strategies rank by on this pool, so the picks are required to be identical,
with one stated exception: k-means++ (typiclust, probcover, cluster_margin, coldstart's typiclust)
starts at the row of largest squared norm, and the embeddings are L2-normalised, so that start is
decided by ~1e-7 rounding and the two scorings may start (and so cluster) differently. For those
the test pins the start to row 0; everything after it must then agree exactly.
"""

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
STRATEGIES = ("kcenter", "balanced+random", "uncertainty", "hybrid", "badge")
#: k-means++ users: their start row is a tie among unit norms (see the module docstring).
THRESHOLDED = ("probcover",)  # picks depend on distances vs a radius, not only on ranks
KMEANS_STRATEGIES = ("typiclust", "probcover", "cluster_margin", "coldstart+uncertainty")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    """Manifest (group split), a detector trained a few steps, its fp32 ONNX, ORT scores of the pool."""
    from edgedistal.data.images import load_images
    from edgedistal.data.split import group_split
    from edgedistal.models.registry import save_checkpoint
    from edgedistal.models.train import TrainConfig, fit

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scores_chain")
    meta = pd.read_csv(synth_dir / "metadata.csv")
    recs = [{"path": str(synth_dir / r.path), "label": int(r.label == "FAKE"), "group": r.group,
             "video": r.video, "frame": int(r.frame)} for r in meta.itertuples()]
    m = group_split(Manifest.from_records(recs), (0.6, 0.2, 0.2), seed=0)
    m.save(root / "manifest.parquet")
    train = m.split("train")
    cfg = TrainConfig(backbone="resnet10t", image_size=SIZE, batch_size=16, max_steps=6, eval_every=0,
                      patience=0, device="cpu", amp="off", seed=0)
    res = fit(load_images(train.paths, SIZE, progress=False), train.labels, cfg=cfg, progress=False)
    save_checkpoint(root / "detector.pt", res.model)
    assert run("export", "--checkpoint", root / "detector.pt", "-o", root / "export", "--precisions", "fp32") == 0
    assert run("score", "--manifest", root / "manifest.parquet", "--onnx-dir", root / "export",
               "--backend", "onnxruntime", "--precision", "fp32", "--device", "cpu", "-o", root / "ort") == 0
    return root


def _picks(out: Path) -> list[str]:
    return pd.read_parquet(out / "distilled.parquet")["sample_id"].astype(str).tolist()


def _distill(chain: Path, out: Path, *extra: object) -> int:
    return run("distill", "--manifest", chain / "manifest.parquet", "--budget", "0.4", "--milestones", "0.2,0.4",
               "--device", "cpu", "-o", out, *extra)


@pytest.mark.parametrize("strategy", STRATEGIES + KMEANS_STRATEGIES)
def test_ort_scores_pick_what_torch_scoring_picks(chain: Path, tmp_path: Path, strategy: str, monkeypatch) -> None:
    if strategy in KMEANS_STRATEGIES:
        from edgedistal.acquire import kernels as st

        orig = st.kmeans_pp
        monkeypatch.setattr(st, "kmeans_pp", lambda x, k, g, first=None: orig(x, k, g, 0 if first is None else first))
    assert _distill(chain, tmp_path / "ort", "--scores", chain / "ort", "--strategy", strategy) == 0
    assert _distill(chain, tmp_path / "torch", "--checkpoint", chain / "detector.pt", "--strategy", strategy) == 0
    a, b = _picks(tmp_path / "ort"), _picks(tmp_path / "torch")
    assert len(a) == len(b) > 0
    if strategy in THRESHOLDED:
        # ProbCover links samples closer than a radius: ORT and torch embeddings differ by < 1e-4
        # (test below), which moves a pair across the radius on some CPUs and swaps one pick
        assert len(set(a) & set(b)) >= 0.9 * len(a)
    else:
        assert a == b
    cfg = json.loads((tmp_path / "ort" / "config.json").read_text())
    assert cfg["mode"] == "scores" and cfg["learner"]["scores"] == str(chain / "ort")
    assert not (tmp_path / "ort" / "learner").exists()  # nothing trained


def test_torch_scoring_matches_ort_numerically(chain: Path, tmp_path: Path) -> None:
    """What the identity rests on: both scorers agree far below the strategies' rank gaps."""
    assert _distill(chain, tmp_path / "t", "--checkpoint", chain / "detector.pt", "--strategy", "random") == 0
    ort = pd.read_parquet(chain / "ort" / "scores.parquet").set_index("sample_id")
    tor = pd.read_parquet(tmp_path / "t" / "scores" / "scores.parquet").set_index("sample_id")
    ids = tor.index
    assert np.abs(ort.loc[ids, "prob"].to_numpy() - tor["prob"].to_numpy()).max() < 1e-4
    e_ort = np.load(chain / "ort" / "embeddings.npy")[ort.index.get_indexer(ids)]
    e_tor = np.load(tmp_path / "t" / "scores" / "embeddings.npy")
    assert np.abs(e_ort - e_tor).max() < 1e-4


def test_scores_of_another_pool_are_refused(chain: Path, tmp_path: Path, capsys) -> None:
    m = Manifest.load(chain / "manifest.parquet")
    part = tmp_path / "part"
    part.mkdir()
    table = pd.read_parquet(chain / "ort" / "scores.parquet")
    keep = table["sample_id"].isin(m.split("test").df["sample_id"])  # no train rows at all
    table[keep].to_parquet(part / "scores.parquet", index=False)
    np.save(part / "embeddings.npy", np.load(chain / "ort" / "embeddings.npy")[keep.to_numpy()])
    assert _distill(chain, tmp_path / "d", "--scores", part) != 0
    assert "miss" in capsys.readouterr().err

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    table = pd.read_parquet(chain / "ort" / "scores.parquet")
    extra = table.iloc[:1].assign(sample_id="not-in-this-manifest")
    pd.concat([table, extra], ignore_index=True).to_parquet(foreign / "scores.parquet", index=False)
    emb = np.load(chain / "ort" / "embeddings.npy")
    np.save(foreign / "embeddings.npy", np.concatenate([emb, emb[:1]]))
    assert _distill(chain, tmp_path / "d2", "--scores", foreign) != 0
    assert "scores of another manifest" in capsys.readouterr().err

@pytest.mark.parametrize("extra, needle", [
    (("--strategy", "bald"), "MC-dropout"),
    (("--score", "aum"), "training dynamics"),
    (("--mode", "full"), "--mode full"),
])
def test_what_scores_cannot_serve_is_refused(chain: Path, tmp_path: Path, capsys, extra, needle) -> None:
    assert _distill(chain, tmp_path / "d", "--scores", chain / "ort", *extra) != 0
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_not_a_scores_folder(chain: Path, tmp_path: Path, capsys) -> None:
    assert _distill(chain, tmp_path / "d", "--scores", tmp_path) != 0
    assert "edgedistal score" in capsys.readouterr().err
