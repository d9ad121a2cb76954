"""`distill --mode labelled` end to end on the generated dataset, and the cold start in the loop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from edgedistal.data.manifest import Manifest
from edgedistal.pipeline.distill import DistillConfig, learner_train, run_distill


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def manifest_path(synth_dir, tmp_path_factory):
    from edgedistal.data.layouts import read_layout

    path = tmp_path_factory.mktemp("lab") / "m.parquet"
    read_layout(synth_dir).manifest.save(path)
    return path


ARGS = ["--mode", "labelled", "--budget", "0.4", "--milestones", "0.2,0.4", "--backbone", "resnet10t",
        "--image-size", "32", "--epochs", "2", "--batch-size", "16", "--checkpoints", "4", "--device", "cpu",
        "--threads", "1"]


def _cfg(**kw) -> DistillConfig:
    base = dict(mode="labelled", budget=0.4, milestones=(0.2, 0.4), checkpoints=4, device="cpu", num_threads=1,
                strategy="ccs", train=learner_train(backbone="resnet10t", image_size=32, epochs=2.0, batch_size=16))
    base.update(kw)
    return DistillConfig(**base)


def test_labelled_ccs_writes_milestones_scores_and_resumes(tmp_path, manifest_path, monkeypatch):
    from edgedistal.cli import main
    from edgedistal.pipeline import distill_labelled

    out = tmp_path / "full"
    main(["distill", "--manifest", str(manifest_path), "--strategy", "ccs", "--real-fraction", "0.4", *ARGS,
          "--out", str(out)])
    m = Manifest.load(manifest_path)
    conf = json.loads((out / "config.json").read_text())
    pool_n = conf["pool"]
    assert conf["mode"] == "labelled" and conf["nested_milestones"] is False
    assert conf["cost"]["images_trained"] > 0 and conf["cost"]["train_s"] > 0 and "select_s" in conf["cost"]
    from edgedistal.data.split import ensure_split

    train_ids = set(ensure_split(m, seed=0).split("train").df["sample_id"])
    for f in (0.2, 0.4):
        snap = Manifest.load(out / "milestones" / f"budget_{f:.3f}.parquet").df
        assert len(snap) == round(f * pool_n) and snap["sample_id"].is_unique
        assert abs((snap["label"] == 0).sum() - 0.4 * len(snap)) <= 1  # --real-fraction 0.4
        assert snap["reason"].str.startswith("ccs: stratum").all()
        assert set(snap["sample_id"]) <= train_ids  # only the train split is a pool
    dist = Manifest.load(out / "distilled.parquet").df
    assert len(dist) == round(0.4 * pool_n)
    scores = pd.read_parquet(out / "pool_scores.parquet")
    assert len(scores) == pool_n
    for col in ("aum", "el2n", "forgetting", "confidence", "variability", "prob", "reason", "picked_0.200"):
        assert col in scores, col
    picked = scores["rank"] >= 0
    assert picked.sum() == len(dist) and (scores.loc[picked, "reason"] != "").all()
    assert (scores.loc[~picked, "reason"] == "").all()
    assert np.load(out / "embeddings.npy").shape[0] == pool_n

    # crash after the first milestone, then --resume: same picks, and no second proxy training
    def boom(rec: dict) -> None:
        if rec["round"] == 0:
            raise Crash

    cfg = _cfg(strategy_kw={"real_fraction": 0.4})
    with pytest.raises(Crash):
        run_distill(m, cfg, tmp_path / "cut", progress=False, on_round=boom)
    assert (tmp_path / "cut" / "learner" / "dynamics.json").exists()

    def no_training(*a, **k):
        raise AssertionError("dynamics should come from the cache")

    monkeypatch.setattr(distill_labelled, "compute_dynamics", no_training)
    again = run_distill(m, cfg, tmp_path / "cut", progress=False, resume=True)
    assert again.manifest.df["sample_id"].tolist() == dist["sample_id"].tolist()

    # another strategy on the same pool reuses the dynamics (--dynamics), and resume refuses changes
    main(["distill", "--manifest", str(manifest_path), "--strategy", "groupcap+d2", *ARGS, "--out",
          str(tmp_path / "d2"), "--dynamics", str(out / "learner")])
    d2 = pd.read_parquet(tmp_path / "d2" / "pool_scores.parquet")
    assert d2["reason"][d2["rank"] >= 0].str.startswith("d2").all()
    from edgedistal.errors import EdgedistalError

    with pytest.raises(EdgedistalError, match="other settings"):
        run_distill(m, _cfg(strategy="easy2hard", strategy_kw={"real_fraction": 0.4}), tmp_path / "cut",
                    progress=False, resume=True)


def test_coldstart_in_the_active_learning_loop(tmp_path):
    """coldstart+hybrid with a seed from the strategy itself: cold picks while val AUC is low."""
    from edgedistal.acquire.learners import HeadLearner, thumbnails
    from edgedistal.data.split import ensure_split
    from edgedistal.data.synth import SynthConfig, generate

    imgs, table = generate(SynthConfig(n_groups=24, frames_per_video=6, size=32, seed=2))
    paths = [f"/nowhere/{v}_{f}.png" for v, f in zip(table.video, table.frame, strict=True)]
    m = ensure_split(Manifest(table.assign(path=paths, source="synth")), seed=0)
    feats = thumbnails(imgs)
    tr, va = (m.df["split"] == "train").to_numpy(), (m.df["split"] == "val").to_numpy()

    def run(threshold: float, name: str):
        cfg = DistillConfig(budget=0.3, seed_size=0.05, rounds=3, device="cpu", strategy="coldstart+hybrid",
                            seed_strategy="strategy", strategy_kw={"threshold": threshold, "cold": "probcover"})
        learner = HeadLearner(feats[tr], m.labels[tr], feats[va], m.labels[va])
        run_distill(m, cfg, tmp_path / name, learner=learner, progress=False)
        s = pd.read_parquet(tmp_path / name / "pool_scores.parquet")
        return s.loc[s["rank"] >= 0].sort_values("rank")

    cold = run(1.01, "cold")
    assert cold["reason"].str.startswith("cold: probcover").all()
    warm = run(0.0, "warm")
    seed_rows = warm["picked_round"] == 0
    assert warm.loc[seed_rows, "reason"].str.startswith("cold").all()  # no learner yet: label-free
    assert warm.loc[~seed_rows, "reason"].str.startswith("warm: hybrid").all()
