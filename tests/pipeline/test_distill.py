"""The distillation loop: schedule, determinism, exact resume, outputs, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgedistal.acquire.learners import HeadLearner, thumbnails
from edgedistal.acquire.loop import plateaued, resolve_count, schedule
from edgedistal.data.manifest import Manifest
from edgedistal.data.split import ensure_split
from edgedistal.data.synth import SynthConfig, generate
from edgedistal.pipeline.distill import DistillConfig, learner_train, run_distill


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def synth_pool():
    """Split manifest + thumbnail features of a generated set (no files needed)."""
    imgs, table = generate(SynthConfig(n_groups=24, frames_per_video=6, size=32, seed=2))
    paths = [f"/nowhere/{v}_{f}.png" for v, f in zip(table.video, table.frame, strict=True)]
    m = ensure_split(Manifest(table.assign(path=paths, source="synth")), seed=0)
    return m, thumbnails(imgs)


def _learner(m: Manifest, feats: np.ndarray, mc: int = 0) -> HeadLearner:
    tr = (m.df["split"] == "train").to_numpy()
    va = (m.df["split"] == "val").to_numpy()
    return HeadLearner(feats[tr], m.labels[tr], feats[va], m.labels[va], mc_dropout=mc)


def _cfg(**kw) -> DistillConfig:
    base = dict(budget=0.3, seed_size=0.05, rounds=4, milestones=(0.1, 0.2, 0.3), device="cpu")
    base.update(kw)
    return DistillConfig(**base)


def test_schedule_makes_milestones_round_boundaries():
    t = schedule(1000, 50, 300, batch=60, milestones=[100, 200, 300, 500])
    assert t[0] == 50 and t[-1] == 300
    assert {100, 200}.issubset(t) and 500 not in t
    assert all(b > a for a, b in zip(t, t[1:], strict=False))
    assert max(np.diff(t)) <= 60
    assert resolve_count(0.2, 1000, "budget") == 200 and resolve_count("250", 1000, "budget") == 250


def test_plateau_rule():
    assert not plateaued([0.6, 0.7, 0.8], 2, 0.01)
    assert plateaued([0.6, 0.8, 0.79, 0.805], 2, 0.01)
    assert not plateaued([0.6, 0.8, 0.79, 0.805], 0, 0.01)


def test_same_seed_same_selection_and_outputs(tmp_path, synth_pool):
    m, feats = synth_pool
    a = run_distill(m, _cfg(), tmp_path / "a", learner=_learner(m, feats), progress=False)
    b = run_distill(m, _cfg(), tmp_path / "b", learner=_learner(m, feats), progress=False)
    c = run_distill(m, _cfg(seed=7), tmp_path / "c", learner=_learner(m, feats), progress=False)
    ids = a.manifest.df["sample_id"].tolist()
    assert ids == b.manifest.df["sample_id"].tolist()
    assert ids != c.manifest.df["sample_id"].tolist()
    pool = m.split("train")
    assert len(ids) == round(0.3 * len(pool)) and len(set(ids)) == len(ids)
    assert set(ids) <= set(pool.df["sample_id"])  # only the train split is a pool
    out = tmp_path / "a"
    d = Manifest.load(out / "distilled.parquet").df
    assert list(d["rank"]) == list(range(len(d))) and (d["split"] == "train").all()
    assert d["round"].is_monotonic_increasing
    for f in (0.1, 0.2, 0.3):
        snap = Manifest.load(out / "milestones" / f"budget_{f:.3f}.parquet").df
        assert len(snap) == round(f * len(pool))
        assert snap["sample_id"].tolist() == ids[: len(snap)]  # prefix of the pick order
    assert not (out / "milestones" / "budget_0.500.parquet").exists()
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert rounds["picked"].sum() == len(ids)
    assert (rounds["n_real"] + rounds["n_fake"] == rounds["picked"]).all()
    assert rounds["groups_covered"].is_monotonic_increasing
    scores = pd.read_parquet(out / "pool_scores.parquet")
    assert len(scores) == len(pool) and (scores["rank"] >= 0).sum() == len(ids)
    assert np.load(out / "embeddings.npy").shape[0] == len(pool)
    conf = json.loads((out / "config.json").read_text())
    assert conf["mode"] == "head" and conf["selected"] == len(ids)


@pytest.mark.parametrize("strategy,crash_after", [("hybrid", 2), ("bald", 0)])
def test_resume_after_crash_gives_uninterrupted_result(tmp_path, synth_pool, strategy, crash_after):
    m, feats = synth_pool
    cfg = _cfg(strategy=strategy, mc_dropout=4 if strategy == "bald" else 0)
    mc = cfg.mc_dropout
    full = run_distill(m, cfg, tmp_path / "full", learner=_learner(m, feats, mc), progress=False)

    def boom(rec: dict) -> None:
        if rec["round"] == crash_after:
            raise Crash

    with pytest.raises(Crash):
        run_distill(m, cfg, tmp_path / "cut", learner=_learner(m, feats, mc), progress=False, on_round=boom)
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert len(state["rounds"]) == crash_after + 1 and not state["finished"]
    again = run_distill(m, cfg, tmp_path / "cut", learner=_learner(m, feats, mc), progress=False, resume=True)
    pd.testing.assert_frame_equal(full.manifest.df, again.manifest.df)
    cols = ["round", "picked", "labelled", "groups_covered", "val_auc"]
    pd.testing.assert_frame_equal(full.rounds[cols], again.rounds[cols])


def test_crash_inside_a_round_resumes_that_round(tmp_path, synth_pool):
    """Killed during round 2's scoring: the state still ends at round 1; resume redoes round 2."""
    m, feats = synth_pool

    class Flaky(HeadLearner):
        def update(self, labelled, round_idx, seed):
            if round_idx == 2:
                raise Crash
            return super().update(labelled, round_idx, seed)

    tr = (m.df["split"] == "train").to_numpy()
    va = (m.df["split"] == "val").to_numpy()
    full = run_distill(m, _cfg(), tmp_path / "full", learner=_learner(m, feats), progress=False)
    with pytest.raises(Crash):
        run_distill(m, _cfg(), tmp_path / "cut", progress=False,
                    learner=Flaky(feats[tr], m.labels[tr], feats[va], m.labels[va]))
    assert len(json.loads((tmp_path / "cut" / "state.json").read_text())["rounds"]) == 2
    again = run_distill(m, _cfg(), tmp_path / "cut", learner=_learner(m, feats), progress=False, resume=True)
    assert again.manifest.df["sample_id"].tolist() == full.manifest.df["sample_id"].tolist()


def test_resume_refuses_changed_settings(tmp_path, synth_pool):
    from edgedistal.errors import EdgedistalError

    m, feats = synth_pool
    run_distill(m, _cfg(), tmp_path / "o", learner=_learner(m, feats), progress=False)
    with pytest.raises(EdgedistalError, match="other settings"):
        run_distill(m, _cfg(budget=0.4), tmp_path / "o", learner=_learner(m, feats), progress=False, resume=True)


def test_val_plateau_stops_early(tmp_path, synth_pool):
    m, feats = synth_pool
    res = run_distill(m, _cfg(budget=0.6, rounds=None, batch=3, milestones=(), patience=1, min_delta=1.0),
                      tmp_path / "p", learner=_learner(m, feats), progress=False)
    assert "plateau" in res.config["stop_reason"]
    assert len(res.manifest) < res.config["budget"]


def test_cli_proxy_detector_resume_and_materialise(tmp_path, synth_dir):
    """Real detector (tiny), proxy mode with a backbone refresh, via the CLI; crash + --resume."""
    from edgedistal.cli import main
    from edgedistal.data.layouts import read_layout

    man = tmp_path / "m.parquet"
    read_layout(synth_dir).manifest.save(man)
    args = ["distill", "--manifest", str(man), "--strategy", "hybrid", "--budget", "0.5", "--seed-size", "0.15",
            "--rounds", "3", "--milestones", "0.3,0.5", "--backbone", "resnet10t", "--image-size", "32", "--steps", "6",
            "--batch-size", "16", "--refresh-every", "2", "--device", "cpu", "--threads", "1"]
    main([*args, "--out", str(tmp_path / "full"), "--materialise", "symlink"])
    full = Manifest.load(tmp_path / "full" / "distilled.parquet").df
    conf = json.loads((tmp_path / "full" / "config.json").read_text())
    assert conf["mode"] == "proxy" and conf["learner"]["refresh_every"] == 2
    links = sorted((tmp_path / "full" / "subset").rglob("*.png"))
    assert len(links) == len(full) and all(p.is_symlink() and p.exists() for p in links)
    assert (tmp_path / "full" / "milestones" / "budget_0.300.parquet").exists()

    m = Manifest.load(man)
    cfg = DistillConfig(budget=0.5, seed_size=0.15, rounds=3, milestones=(0.3, 0.5), refresh_every=2, device="cpu",
                        num_threads=1, train=learner_train(backbone="resnet10t", image_size=32, max_steps=6,
                                                           batch_size=16))

    def boom(rec: dict) -> None:
        if rec["round"] == 2:
            raise Crash

    with pytest.raises(Crash):
        run_distill(m, cfg, tmp_path / "cut", progress=False, on_round=boom)
    main([*args, "--out", str(tmp_path / "cut"), "--resume"])
    cut = Manifest.load(tmp_path / "cut" / "distilled.parquet").df
    assert cut["sample_id"].tolist() == full["sample_id"].tolist()


def test_full_mode_retrains_each_round(tmp_path, synth_dir):
    from edgedistal.data.layouts import read_layout

    m = read_layout(synth_dir).manifest
    cfg = DistillConfig(budget=0.4, seed_size=0.15, rounds=2, mode="full", device="cpu", strategy="kcenter",
                        num_threads=1, train=learner_train(backbone="resnet10t", image_size=32, max_steps=4,
                                                           batch_size=16))
    res = run_distill(m, cfg, tmp_path / "f", progress=False)
    assert res.config["mode"] == "full" and res.config["learner"]["mode"] == "full"
    assert len(res.rounds) == 3 and len(res.manifest) == res.config["budget"]
    # only the newest detector checkpoint is kept
    assert len(list((tmp_path / "f" / "learner").glob("detector_r*.pt"))) == 1


def test_label_aware_balance_and_pairs_hold_at_every_milestone(tmp_path, synth_pool):
    """balanced+ / paired+ act from the seed round on; --no-label-aware reads no pool labels."""
    m, feats = synth_pool
    pool = m.split("train").df
    res = run_distill(m, _cfg(strategy="balanced+hybrid"), tmp_path / "bal", learner=_learner(m, feats),
                      progress=False)
    for f in (0.1, 0.2, 0.3):
        snap = Manifest.load(tmp_path / "bal" / "milestones" / f"budget_{f:.3f}.parquet").df
        assert abs(int((snap["label"] == 0).sum()) - len(snap) / 2) <= 1, f  # pool is 1/3 real
    assert abs(res.rounds["n_real"].iloc[0] - res.rounds["picked"].iloc[0] / 2) <= 1  # the seed set too
    res = run_distill(m, _cfg(strategy="paired+hybrid"), tmp_path / "pair", learner=_learner(m, feats),
                      progress=False)
    d = res.manifest.df
    real_groups = set(d.loc[d["label"] == 0, "group"])
    has_real = set(pool.loc[pool["label"] == 0, "group"])
    lonely = [g for g in d.loc[d["label"] == 1, "group"] if g in has_real and g not in real_groups]
    assert len(lonely) <= len(res.rounds)  # at most the last slot of each round goes unpaired
    blind = run_distill(m, _cfg(strategy="balanced+hybrid", label_aware=False), tmp_path / "blind",
                        learner=_learner(m, feats), progress=False)
    assert blind.manifest.df["sample_id"].tolist() != Manifest.load(
        tmp_path / "bal" / "distilled.parquet").df["sample_id"].tolist()


# -- the nested config: DistillConfig.train, old config.json files -----------------------------
PROOF = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "proof_dfdc_cpu" / "distilled"


@pytest.mark.parametrize("folder", sorted(p.name for p in PROOF.iterdir()) if PROOF.exists() else [])
def test_old_flat_config_json_reads_and_keeps_its_fingerprint(folder: str) -> None:
    """Runs made before ``train`` nested still load, and fingerprint as they did (so they resume)."""
    from edgedistal.data.distilled import method_name

    old = json.loads((PROOF / folder / "config.json").read_text())["config"]
    cfg = DistillConfig.from_dict(old)
    assert cfg.train.backbone == old["backbone"] and cfg.train.max_steps == old["steps"]
    assert cfg.train.patience == old["train_patience"] and cfg.seed == old["seed"]
    want = {k: v for k, v in old.items() if k not in ("device", "materialise", "num_threads", "dynamics_dir")}
    for k, default in (("checkpoints", 6), ("folds", 0)):
        if want.get(k) == default:
            want.pop(k)
    assert cfg.fingerprint_dict() == want
    assert method_name(PROOF / folder) == old["strategy"]  # what evaluate --distilled reads
    again = DistillConfig.from_dict(cfg.to_dict())  # the nested form round-trips
    assert again == cfg


def test_train_settings_have_one_source() -> None:
    from edgedistal.errors import EdgedistalError
    from edgedistal.models.train import TrainConfig

    with pytest.raises(EdgedistalError, match="train.seed"):
        DistillConfig(seed=1, train=learner_train(seed=2))
    cfg = DistillConfig(seed=3, device="cpu", train=learner_train(lr=1e-3))
    from edgedistal.pipeline.distill_config import train_config

    t = train_config(cfg)
    assert (t.seed, t.device, t.lr, t.image_size) == (3, "cpu", 1e-3, 64)
    assert "seed" not in cfg.to_dict()["train"]
    changed = DistillConfig(train=learner_train(weight_decay=0.1)).fingerprint_dict()
    assert changed["train.weight_decay"] == 0.1 and "train.weight_decay" not in DistillConfig().fingerprint_dict()
    assert TrainConfig().image_size != DistillConfig().train.image_size  # the learner is a smaller proxy
    with pytest.raises(EdgedistalError, match="unknown distill setting"):
        DistillConfig.from_dict({"budget": 0.2, "bogus": 1})


def test_evaluate_budgets_are_the_one_source_of_milestones(tmp_path, synth_pool) -> None:
    from edgedistal.errors import EdgedistalError
    from edgedistal.pipeline.evaluate import _run_distill

    m, _ = synth_pool
    with pytest.raises(EdgedistalError, match="differ from the evaluation budgets"):
        _run_distill(m, _cfg(milestones=(0.1,)), tmp_path / "d", (0.2, 0.3), progress=False)


def test_distill_help_names_match_the_registries_without_importing_torch():
    """`distill --help` spells the names out (no torch import: 2 s → 0.1 s); they must not drift."""
    import subprocess
    import sys

    from edgedistal.acquire.difficulty import DIFFICULTY
    from edgedistal.acquire.registry import STRATEGIES
    from edgedistal.acquire.uncertainty import SCORES
    from edgedistal.commands import distill as cmd

    assert cmd.STRATEGIES == STRATEGIES
    assert set(cmd.SCORE_NAMES) == set(SCORES) | set(DIFFICULTY)
    code = ("import sys; from edgedistal.cli import main\n"
            "try: main(['distill', '--help'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'distill --help imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_default_distill_is_balanced_sampling_without_a_proxy(tmp_path, synth_dir, monkeypatch):
    """The default (balanced+random) reads labels only: no proxy is trained, the picks are 50/50,
    and the milestones are evaluate's default budgets."""
    from edgedistal.cli import main
    from edgedistal.commands.options import DEFAULT_BUDGETS, DEFAULT_STRATEGY
    from edgedistal.data.layouts import read_layout
    from edgedistal.pipeline import distill as pipe

    def no_training(*a, **k):
        raise AssertionError("a proxy was built for a label-only strategy")

    monkeypatch.setattr(pipe, "build_learner", no_training)
    man = tmp_path / "m.parquet"
    read_layout(synth_dir).manifest.save(man)
    main(["distill", "--manifest", str(man), "--budget", "0.5", "--milestones", "0.2,0.5", "--out", str(tmp_path / "d")])
    conf = json.loads((tmp_path / "d" / "config.json").read_text())
    assert conf["config"]["strategy"] == DEFAULT_STRATEGY == "balanced+random" and conf["mode"] == "none"
    picked = Manifest.load(tmp_path / "d" / "distilled.parquet").df
    assert abs((picked["label"] == 0).mean() - 0.5) < 0.1
    assert (tmp_path / "d" / "milestones" / "budget_0.200.parquet").exists()
    assert pipe.model_free(DistillConfig(strategy="balanced+random"))
    assert not pipe.model_free(DistillConfig(strategy="hybrid"))
    assert not pipe.model_free(DistillConfig(strategy="balanced+random", label_aware=False))
    assert DEFAULT_BUDGETS == "0.01,0.02,0.05,0.1,0.2"


def test_default_milestones_stop_at_the_budget(tmp_path, synth_dir):
    """`distill --budget 0.1` without --milestones used to fail (the default curve's 0.2 is above
    the budget); now the default is the curve up to the budget. Given milestones are still checked."""
    from edgedistal.cli import main
    from edgedistal.data.layouts import read_layout
    from edgedistal.pipeline.distill_config import auto_milestones

    assert auto_milestones("0.1", 1000) == (0.01, 0.02, 0.05, 0.1)
    assert auto_milestones("30", 1000) == (0.01, 0.02)  # a count: 10 and 20 samples fit, 50 does not
    assert auto_milestones("0.5", 1000) == (0.01, 0.02, 0.05, 0.1, 0.2)
    man = tmp_path / "m.parquet"
    read_layout(synth_dir).manifest.save(man)
    main(["distill", "--manifest", str(man), "--budget", "0.1", "--out", str(tmp_path / "d")])
    snaps = sorted(p.name for p in (tmp_path / "d" / "milestones").iterdir())
    assert snaps[-1] == "budget_0.100.parquet" and "budget_0.200.parquet" not in snaps
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--manifest", str(man), "--budget", "0.1", "--milestones", "0.2", "--out",
              str(tmp_path / "e")])
    assert exc.value.code == 2 and not (tmp_path / "e").exists()


def test_default_milestones_resolve_in_the_library(tmp_path, synth_dir):
    """The default lives in DistillConfig (milestones=None), not in the CLI: the library resolves
    the same curve, writes it into config.json (so a resume compares the resolved list), and a
    schedule fixed with ``rounds`` keeps exactly its rounds (milestones would add some)."""
    from edgedistal.data.layouts import read_layout

    m = read_layout(synth_dir).manifest
    run_distill(m, DistillConfig(budget=0.1, strategy="balanced+random", device="cpu"), tmp_path / "a",
                progress=False)
    written = json.loads((tmp_path / "a" / "config.json").read_text())["config"]
    assert written["milestones"] == [0.01, 0.02, 0.05, 0.1]
    assert (tmp_path / "a" / "milestones" / "budget_0.100.parquet").exists()
    fixed = run_distill(m, DistillConfig(budget=0.1, rounds=2, strategy="balanced+random", device="cpu"),
                        tmp_path / "b", progress=False)
    assert list(fixed.config["config"]["milestones"]) == [] and not (tmp_path / "b" / "milestones").exists()
    assert len(fixed.rounds) == 3  # the seed set and the two rounds asked for
