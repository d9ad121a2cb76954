"""Issue 22: paired verdicts, power, converging arms, RS2, screening (synthetic, fast)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from edgedistal.errors import EdgedistalError
from edgedistal.pipeline.compare import paired_diff, seeds_needed, summarise
from edgedistal.pipeline.evaluate import Arm, EvalConfig, plan_arms, run_evaluation, train_cell
from edgedistal.pipeline.screen import screen_cells

BUDGETS = [0.01, 0.02, 0.05, 0.1, 0.2]


def _paired_cells(effect: float, seeds: int, rng: np.random.Generator, seed_sd: float = 0.03,
                  arm_sd: float = 0.01, full_capped: bool = False) -> pd.DataFrame:
    """Cells where every arm shares a per-seed effect (init, batch order: sd 0.03 AUC, the DFDC
    figure) plus its own noise; the method is ``effect`` above balanced, random 0.01 below."""
    rows = []
    for s in range(seeds):
        shared = {b: rng.normal(0, seed_sd) for b in BUDGETS}
        for b in BUDGETS:
            level = 0.6 + 0.5 * b
            base = {"budget": b, "seed": s, "wall_s": 1.0, "n_train": 10, "steps": 5, "samples_seen": 50,
                    "converged": True, "capped_improving": False}
            for arm, kind, shift in (("m", "distilled", effect), ("balanced", "baseline", 0.0),
                                     ("random", "baseline", -0.01), ("stratified-r50", "baseline", -0.02)):
                rows.append({**base, "arm": arm, "kind": kind, "cell": f"{arm}_{b}_{s}",
                             "frame_auc": level + shift + shared[b] + rng.normal(0, arm_sd),
                             **({"stratified_arm": "stratified-r50"} if arm == "m" else {})})
        rows.append({"arm": "full", "kind": "full", "budget": 1.0, "seed": s, "frame_auc": 0.84, "wall_s": 9.0,
                     "n_train": 100, "steps": 50, "samples_seen": 500, "converged": not full_capped,
                     "capped_improving": full_capped, "cell": f"full_{s}"})
    return pd.DataFrame(rows)


def test_paired_interval_detects_002_with_enough_seeds_where_the_2std_rule_cannot() -> None:
    rng = np.random.default_rng(22)
    s = summarise(_paired_cells(0.02, 12, rng), BUDGETS)
    pts = s["comparisons"]["m"]["points"]
    assert all(p["baseline"] == "balanced" for p in pts)  # the strongest baseline, named
    assert all(p["outcome"] == "win" for p in pts)  # 0.02 ± 0.01/√12 per seed: the interval excludes 0
    assert all(p["ci_lo"] > 0 and p["diff"] == pytest.approx(0.02, abs=0.01) for p in pts)
    # the unpaired 2-std rule (seed sd 0.03) calls every one of these a tie
    assert all(p["outcome_2std"] == "tie" for p in pts)
    assert s["comparisons"]["m"]["aubc_outcome"] == "win"
    head = s["conclusion"]
    best = max(pts, key=lambda p: p["diff"])
    assert head.startswith("m beats the strongest baseline at 5/5 budgets")
    assert f"best at {100 * best['budget']:g} % of the data" in head and "vs balanced" in head


def test_pure_noise_pair_is_a_tie_at_the_stated_rate() -> None:
    rng = np.random.default_rng(7)
    reps, calls = 2000, []
    for _ in range(reps):
        shared = rng.normal(0, 0.03, 5)
        a = dict(enumerate(shared + rng.normal(0, 0.01, 5)))
        b = dict(enumerate(shared + rng.normal(0, 0.01, 5)))
        calls.append(paired_diff(a, b)["verdict"])
    ties = calls.count("tie") / reps
    assert 0.93 <= ties <= 0.97  # 95 % interval: 5 % false wins + losses
    assert abs(calls.count("win") - calls.count("loss")) < 0.03 * reps


def test_power_seeds_match_simulated_detection() -> None:
    # per-seed difference sd 0.014 (0.01 √2): a 0.02 effect needs ~6 paired seeds at 80 % power
    n = seeds_needed(0.02, 0.01 * math.sqrt(2))
    assert 5 <= n <= 8
    rng = np.random.default_rng(3)
    hits = sum(paired_diff(dict(enumerate(rng.normal(0.02, 0.01 * math.sqrt(2), n))),
                           dict(enumerate(np.zeros(n))))["verdict"] == "win" for _ in range(1000))
    assert 0.72 <= hits / 1000 <= 0.9
    assert seeds_needed(0.0, 0.01) is None and seeds_needed(0.01, 0.0) == 2
    # unpaired, the 0.03 seed sd dominates: far more seeds
    assert seeds_needed(0.02, 0.03 * math.sqrt(2)) > 30


def test_capped_full_arm_is_flagged_and_no_gain_kept_is_printed() -> None:
    from edgedistal.pipeline.report import results_table

    s = summarise(_paired_cells(0.02, 3, np.random.default_rng(0), full_capped=True), BUDGETS)
    assert s["full"]["all_converged"] is False
    assert all(math.isnan(p["gain_kept"]) for c in s["curves"].values() for p in c["points"])
    assert "no 'gain kept': the full arm is capped_improving" in s["conclusion"]
    assert any("capped_improving" in w for w in s["warnings"])
    assert set(s["capped_improving"]) == {"full_0", "full_1", "full_2"}
    table = results_table(s)
    assert (table["gain kept"] == "–").all() and "capped_improving" in table
    ok = summarise(_paired_cells(0.02, 3, np.random.default_rng(0)), BUDGETS)
    assert all(math.isfinite(p["gain_kept"]) for c in ok["curves"].values() for p in c["points"])


# -- the converged protocol's step cap follows the val curve (fit faked: no training) -------------
def _fake_fit(calls: list, plateau_at: int | None):
    """A fit whose val AUC rises linearly until ``plateau_at`` steps (None: forever)."""

    def fit(x, y, xv, yv, cfg, progress=False, epoch_rows=None):
        cap = cfg.max_steps
        calls.append(cap)
        stop = cap if plateau_at is None or plateau_at >= cap else plateau_at + 3
        hist = [{"step": k, "val_auc": 0.5 + 0.01 * min(k, plateau_at or k)} for k in range(1, stop + 1, 2)]
        bs = min(cfg.batch_size, epoch_rows or len(x))
        return SimpleNamespace(model=None, history=hist, steps=stop, epochs=stop * bs / len(x),
                               samples_seen=stop * bs, wall_s=0.01, images_per_s=1.0, best_step=stop,
                               best_val_auc=hist[-1]["val_auc"], stopped="steps" if stop == cap else "early_stop",
                               device="cpu", precision="fp32")
    return fit


def _arm_data(n: int = 60):
    rng = np.random.default_rng(0)
    images = np.zeros((n + 20, 4, 4, 3), np.uint8)
    labels = rng.integers(0, 2, n + 20)
    groups = np.array([f"g{i // 2}" for i in range(n + 20)])
    return images, labels, groups, np.arange(n, n + 20), groups.copy()


@pytest.fixture()
def fake_training(monkeypatch):
    import edgedistal.models.predict as predict_mod
    import edgedistal.models.train as train_mod

    monkeypatch.setattr(predict_mod, "predict", lambda model, x, device=None: (np.linspace(0, 1, len(x)), None))

    def use(plateau_at):
        calls: list = []
        monkeypatch.setattr(train_mod, "fit", _fake_fit(calls, plateau_at))
        return calls
    return use


def test_still_improving_arm_is_retrained_up_to_the_ceiling_then_flagged(fake_training) -> None:
    from edgedistal.models.train import TrainConfig

    images, labels, groups, test, videos = _arm_data()
    arm = Arm("random", "baseline", 0.5, 0, np.arange(60))
    cfg = EvalConfig(max_epochs=2, ceiling_epochs=16, min_steps=10, grow=2.0)
    calls = fake_training(None)  # never plateaus
    rec = train_cell(arm, images, labels, groups, test, videos, TrainConfig(batch_size=4), cfg)
    assert calls == sorted(calls) and len(calls) == 4 and calls[-1] == rec["ceiling_steps"]
    assert calls[1] == 2 * calls[0]
    assert rec["capped_improving"] is True and rec["converged"] is False
    assert len(rec["attempts"]) == 4 and rec["wall_s_all_attempts"] == pytest.approx(0.04)
    calls = fake_training(40)  # plateaus at 40 steps: the second cap (2 × ~26) reaches it
    rec = train_cell(arm, images, labels, groups, test, videos, TrainConfig(batch_size=4), cfg)
    assert len(calls) == 2 and rec["capped_improving"] is False and rec["stopped"] == "early_stop"


def test_a_capped_cell_escalates_on_rerun_and_others_are_reused(synth_manifest, tmp_path, fake_training) -> None:
    from edgedistal.models.train import TrainConfig

    kw = dict(distilled={"m": _fake_distill_dir(synth_manifest, tmp_path / "d", (0.3,))}, out_dir=tmp_path / "e",
              progress=False, train_cfg=TrainConfig(batch_size=4, image_size=32), images=np.zeros(
                  (len(synth_manifest), 32, 32, 3), np.uint8))
    base = dict(budgets=(0.3,), seeds=2, max_epochs=2, min_steps=5, baselines=("random", "rs2"))
    fake_training(None)
    first = run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base, ceiling_epochs=2), **kw)
    capped = first.cells[first.cells["capped_improving"].astype(bool)]
    assert len(capped) == len(first.cells) - 2  # every arm but RS2 (fixed compute) is capped
    assert first.summary["full"]["all_converged"] is False
    calls = fake_training(None)
    again = run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base, ceiling_epochs=8), **kw)
    assert again.summary["resume"]["escalated"] == len(capped)
    full = again.cells.set_index("cell").loc["full_s0"]
    assert len(full["attempts"]) == 3 and full["step_cap"] == full["ceiling_steps"]
    assert len(calls) == 2 * len(capped) + 2  # two more caps per capped arm; RS2 follows its new reference
    # paired: at a seed every arm shares the training seed (init, batch order) and the val-carve seed
    for _, at in again.cells.groupby("seed"):
        assert at["train_seed"].nunique() == 1 and at["val_seed"].nunique() == 1
    assert again.cells["train_seed"].nunique() == 2
    rs2 = again.cells[again.cells["arm"] == "rs2"].set_index("seed")
    ref = again.cells[again.cells["arm"] == "random"].set_index("seed")
    assert (rs2["samples_seen"] == ref["samples_seen"]).all()


def _two_arm_group(tmp_path, monkeypatch, escalate: str):
    """One budget and seed: arm ``random`` (40 rows) still rises at every cap, ``m`` (42) plateaus."""
    import edgedistal.models.predict as predict_mod
    import edgedistal.models.train as train_mod
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import _ArmData, _Cells

    monkeypatch.setattr(predict_mod, "predict", lambda model, x, device=None: (np.linspace(0, 1, len(x)), None))
    calls: list = []
    rising, flat = _fake_fit([], None), _fake_fit([], 5)

    def fit(x, y, xv, yv, cfg, progress=False, epoch_rows=None):
        calls.append((len(x), cfg.max_steps))
        return (rising if len(x) == 40 else flat)(x, y, xv, yv, cfg, progress, epoch_rows)

    monkeypatch.setattr(train_mod, "fit", fit)
    images, labels, groups, test, videos = _arm_data()
    arms = [Arm("random", "baseline", 0.5, 0, np.arange(40)), Arm("m", "distilled", 0.5, 0, np.arange(42))]
    cfg = EvalConfig(max_epochs=2, ceiling_epochs=16, min_steps=10, val_source="split", escalate=escalate)
    book = _Cells(tmp_path, {a.key: "fp" for a in arms}, cfg, TrainConfig(batch_size=4))
    data = _ArmData(images, labels, groups, test, videos, 60, val_rows=np.arange(60, 70))

    def run() -> dict:
        todo, _ = book.todo(arms, resume=True, shard=None, say=lambda m: None)
        book.train(todo, data, None, False, lambda m: None)
        return {a.arm: json.loads((tmp_path / f"{a.key}.json").read_text()) for a in arms}
    return run, calls, monkeypatch, train_mod


def test_a_budget_and_seed_climb_the_caps_together_each_arm_keeping_its_best_run(tmp_path, monkeypatch) -> None:
    """Cell by cell, whether an arm earned a larger cap hung on one noisy number (on DFDC dev at 5 %
    arms kept at 200 steps averaged 0.612 test AUC, at 800 0.695): the gate decided verdicts. Now
    the paired arms of a budget and seed train every cap any of them needed."""
    run, calls, *_ = _two_arm_group(tmp_path / "g", monkeypatch, "group")
    recs = run()
    assert [h["step_cap"] for h in recs["random"]["attempts"]] == [20, 40, 80, 160]
    assert [h["step_cap"] for h in recs["m"]["attempts"]] == [21, 42, 84, 168]  # its own sequence, same level
    assert recs["random"]["capped_improving"] is True and recs["m"]["capped_improving"] is False
    assert len(calls) == 8 and [c for n, c in calls[:2]] == [20, 21]  # level by level, not arm by arm
    run, calls, *_ = _two_arm_group(tmp_path / "c", monkeypatch, "cell")
    recs = run()
    assert len(recs["random"]["attempts"]) == 4 and len(recs["m"]["attempts"]) == 1


def test_a_stopped_group_resumes_at_the_cap_it_was_training(tmp_path, monkeypatch) -> None:
    """Every run is written as it ends: a kill mid-climb used to lose a cell's earlier runs."""
    run, calls, mp, train_mod = _two_arm_group(tmp_path, monkeypatch, "group")
    fit = train_mod.fit

    def dies_at_the_fifth(*a, **k):
        if len(calls) == 4:
            raise KeyboardInterrupt
        return fit(*a, **k)

    mp.setattr(train_mod, "fit", dies_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        run()
    on_disk = {p.stem: [h["step_cap"] for h in json.loads(p.read_text())["attempts"]] for p in tmp_path.glob("*.json")}
    assert on_disk == {"random_b0.500_s0": [20, 40], "m_b0.500_s0": [21, 42]}
    mid = json.loads((tmp_path / "random_b0.500_s0.json").read_text())  # still rising, 40 of 160 steps
    assert mid["converged"] is False and mid["capped_improving"] is False  # climbing, not capped
    mp.setattr(train_mod, "fit", fit)
    recs = run()
    assert [c for _, c in calls[4:]] == [80, 84, 160, 168]  # no cap trained twice, no kept run retrained
    assert [h["step_cap"] for h in recs["m"]["attempts"]] == [21, 42, 84, 168]
    assert recs["random"]["capped_improving"] is True  # at its ceiling now


def test_auto_seeds_plan_more_seeds_at_small_budgets(synth_manifest) -> None:
    df = synth_manifest.df
    pool = np.flatnonzero((df["split"] == "train").to_numpy())
    arms = plan_arms(df, pool, {}, EvalConfig(budgets=(0.05, 0.2), baselines=("random", "rs2")))
    per = pd.Series([(a.arm, a.budget) for a in arms]).value_counts()
    assert per[("random", 0.05)] == 5 and per[("random", 0.2)] == 3 and per[("rs2", 0.05)] == 5
    assert per[("full", 1.0)] == 3
    assert arms[-1].kind == "rs2"  # RS2 plans last: it needs its reference's samples count
    assert EvalConfig().budgets == (0.01, 0.02, 0.05, 0.1, 0.2)


def test_rs2_draws_a_fresh_subset_every_epoch_for_the_same_samples() -> None:
    from edgedistal.models.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 20)
    cfg = TrainConfig(backbone="resnet10t", image_size=32, batch_size=4, max_steps=6, augment="none",
                      schedule="cosine", device="cpu", num_threads=1, patience=0)
    res = fit(x, y, None, None, cfg, progress=False, epoch_rows=8)
    assert res.samples_seen == 24 and res.epochs == pytest.approx(3.0)  # 8-row epochs, batch 4


# -- screening -----------------------------------------------------------------------------------
def test_screening_runs_20_seeds_fast_and_finds_a_planted_signal() -> None:
    rng = np.random.default_rng(0)
    n_pool, n_test, dim = 2000, 800, 16
    x = rng.normal(size=(n_pool + n_test, dim)).astype(np.float32)
    clean = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    labels = clean.copy()
    noisy = np.zeros(len(x), bool)
    noisy[:n_pool] = rng.random(n_pool) < 0.35  # a third of the pool is mislabelled …
    labels[noisy] = 1 - labels[noisy]
    groups = np.array([f"g{i // 4}" for i in range(len(x))])
    pool, test = np.arange(n_pool), np.arange(n_pool, n_pool + n_test)
    budgets = (0.01, 0.02, 0.05)
    good = {}  # … and the planted method picks only clean rows, half real half fake
    for b in budgets:
        n = int(round(b * n_pool))
        ok = pool[~noisy[pool]]
        real, fake = ok[labels[ok] == 0], ok[labels[ok] == 1]
        pick = np.concatenate([rng.choice(real, n // 2, replace=False), rng.choice(fake, n - n // 2, replace=False)])
        good[b] = pick
    t0 = time.perf_counter()
    cells = screen_cells(x, labels, groups, pool, test, budgets, 20, {"clean": good})
    assert time.perf_counter() - t0 < 30
    assert cells["seed"].nunique() == 20
    s = summarise(cells, list(budgets))
    pts = s["comparisons"]["clean"]["points"]
    assert [p["outcome"] for p in pts] == ["win"] * 3
    assert all(p["paired_n"] == 20 for p in pts)


def test_screen_cli_on_score_output(synth_manifest, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgedistal.commands.evaluate import evaluate

    mpath = synth_manifest.save(tmp_path / "m.parquet")
    feats = tmp_path / "scores"
    feats.mkdir()
    df = synth_manifest.df
    rng = np.random.default_rng(0)
    pd.DataFrame({"sample_id": df["sample_id"], "prob": 0.5}).to_parquet(feats / "scores.parquet")
    emb = rng.normal(size=(len(df), 8)).astype(np.float32)
    emb[:, 0] += 2 * df["label"].to_numpy()
    np.save(feats / "embeddings.npy", emb)
    d = _fake_distill_dir(synth_manifest, tmp_path / "d", (0.2, 0.4))
    out = tmp_path / "screen"
    res = CliRunner().invoke(evaluate, ["--protocol", "screen", "--features", str(feats), "--manifest", str(mpath),
                                        "--distilled", f"m={d}", "--budgets", "0.2,0.4", "--seeds", "5",
                                        "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "SCREENING" in res.output
    md = (out / "screen.md").read_text()
    assert "**screening** result" in md and "| m | 20% |" in md
    bad = CliRunner().invoke(evaluate, ["--protocol", "screen", "--manifest", str(mpath), "-o", str(tmp_path / "x")])
    assert bad.exit_code != 0
    # choose on val: the heads are scored on the val rows, and the report says so
    res = CliRunner().invoke(evaluate, ["--protocol", "screen", "--features", str(feats), "--manifest", str(mpath),
                                        "--distilled", f"m={d}", "--budgets", "0.2,0.4", "--seeds", "3",
                                        "--split", "val", "-o", str(tmp_path / "screen_val")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "screen_val" / "summary.json").read_text())
    assert summary["eval_split"] == "val" and "SCREENING on val" in res.output
    assert summary["test_size"] == int((synth_manifest.df["split"] == "val").sum())


@pytest.fixture()
def synth_manifest(synth_dir: Path):
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split

    return group_split(read_layout(synth_dir).manifest, (0.6, 0.1, 0.3), seed=0)


def _fake_distill_dir(manifest, out: Path, budgets, seed: int = 5) -> Path:
    pool = manifest.split("train").df
    order = np.random.default_rng(seed).permutation(len(pool))
    for b in budgets:
        n = int(round(b * len(pool)))
        df = pool.iloc[order[:n]].assign(round=0, rank=np.arange(n))
        (out / "milestones").mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / "milestones" / f"budget_{b:.3f}.parquet")
    return out


def test_ceiling_and_seeds_do_not_change_the_cell_fingerprint() -> None:
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import train_fingerprint

    tc = TrainConfig()
    a = train_fingerprint(tc, EvalConfig(max_epochs=12.0, patience=4))
    b = train_fingerprint(tc, EvalConfig(max_epochs=12.0, patience=4, ceiling_epochs=200, grow=3.0, seeds=7,
                                         budgets=(0.3,)))
    assert a == b  # old cells stay reusable; the first cap's recipe is what they were trained with
    assert a != train_fingerprint(tc, EvalConfig(max_epochs=24.0, patience=4))


def test_the_full_arm_can_start_at_its_own_cap_without_touching_the_other_cells(fake_training) -> None:
    """--full-max-epochs: the full pool starts at a larger first cap (it plateaus late); only its
    fingerprint carries it, so the subset cells of an earlier run stay reusable."""
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import full_recipe, train_fingerprint

    images, labels, groups, test, videos = _arm_data()
    cfg = EvalConfig(max_epochs=2, ceiling_epochs=16, min_steps=10, full_max_epochs=8)
    tc = TrainConfig(batch_size=4)
    calls = fake_training(None)
    train_cell(Arm("random", "baseline", 0.5, 0, np.arange(60)), images, labels, groups, test, videos, tc, cfg)
    first_subset = calls[0]
    calls = fake_training(None)
    rec = train_cell(Arm("full", "full", 1.0, 0, np.arange(60)), images, labels, groups, test, videos, tc, cfg)
    assert calls[0] == 4 * first_subset and len(calls) == 2 and calls[-1] == rec["ceiling_steps"]
    plain = train_fingerprint(tc, EvalConfig(max_epochs=2))
    assert train_fingerprint(tc, cfg) == train_fingerprint(tc, EvalConfig(max_epochs=2, min_steps=10))
    assert full_recipe(plain, EvalConfig(max_epochs=2)) == plain != full_recipe(plain, cfg)
    with pytest.raises(EdgedistalError, match="full_max_epochs"):
        EvalConfig(max_epochs=2, ceiling_epochs=16, full_max_epochs=32).validate()


def test_workers_split_the_cells_longest_first_so_the_full_arm_trains_beside_the_rest(tmp_path) -> None:
    """Sharding by plan position put the full arm (planned first) with a third of the small cells on
    one worker; the longest-first split gives it a worker and spreads the rest."""
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import _Cells

    cfg = EvalConfig(max_epochs=12, full_max_epochs=48)
    arms = [Arm("full", "full", 1.0, 0, np.arange(2000))]
    arms += [Arm(m, "baseline", 0.2, s, np.arange(400)) for s in range(3) for m in ("random", "balanced")]
    book = _Cells(tmp_path, {a.key: "x" for a in arms}, cfg, TrainConfig(batch_size=32))
    shares = book.shares([(a, None, "missing") for a in arms], 2)
    assert shares[0] == ["full_s0"] and len(shares[1]) == 6
    todo, status = book.todo(arms, resume=True, shard=(1, 2), say=lambda m: None)
    assert [a.key for a, *_ in todo] == [a.key for a in arms[1:]] and status["missing"] == 7
    even = book.shares([(a, None, "missing") for a in arms[1:]], 2)  # whole (budget, seed) groups: 2 + 1
    assert [len(k) for k in even] == [4, 2] and sorted(even[0] + even[1]) == sorted(a.key for a in arms[1:])
    assert all(len({k.rsplit("_s", 1)[1] for k in keys}) == len(keys) // 2 for keys in even)  # pairs stay together
    cells = _Cells(tmp_path, book.prints, dataclasses.replace(cfg, escalate="cell"), book.train_cfg)
    even = cells.shares([(a, None, "missing") for a in arms[1:]], 2)  # cell by cell: three each
    assert [len(k) for k in even] == [3, 3]


def test_a_left_out_full_arm_is_not_a_one_seed_arm():
    """--full-seeds 0 (the full arm converged in its own run) once printed 'Some arms have 1 seed'."""
    from edgedistal.pipeline.compare import warnings

    curves = {"m": {"n_seeds": 5, "points": []}, "balanced": {"n_seeds": 5, "points": []}}
    assert not any("1 seed" in w for w in warnings({"full": {"n_seeds": 0}, "curves": curves}, "frame_auc"))
    curves["m"]["n_seeds"] = 1
    assert any("1 seed" in w for w in warnings({"full": {"n_seeds": 0}, "curves": curves}, "frame_auc"))


# -- every arm keeps its best run (a longer retraining can stop lower) ---------------------------
def _fit_that_peaks_at_the_first_cap(calls: list, first_cap: int):
    """The first run rises to its cap (so it is retrained longer); every longer run stops early, lower."""

    def fit(x, y, xv, yv, cfg, progress=False, epoch_rows=None):
        cap = cfg.max_steps
        calls.append(cap)
        stop = cap if cap <= first_cap else 6
        hist = [{"step": k, "val_auc": 0.5 + 0.01 * k} for k in range(1, stop + 1)]
        if cap > first_cap:
            hist = [{"step": k, "val_auc": 0.55} for k in range(1, stop + 1)]
        return SimpleNamespace(model=SimpleNamespace(cap=cap), history=hist, steps=stop, epochs=1.0,
                               samples_seen=stop * 4, wall_s=0.01, images_per_s=1.0, best_step=stop,
                               best_val_auc=max(h["val_auc"] for h in hist),
                               stopped="steps" if stop == cap else "early_stop", device="cpu", precision="fp32")
    return fit


@pytest.fixture()
def peaky_training(monkeypatch):
    import edgedistal.models.predict as predict_mod
    import edgedistal.models.train as train_mod

    tested: list = []

    def predict(model, x, device=None):
        tested.append(model.cap)
        return np.linspace(0, 1, len(x)), None

    monkeypatch.setattr(predict_mod, "predict", predict)

    def use(first_cap: int):
        calls: list = []
        monkeypatch.setattr(train_mod, "fit", _fit_that_peaks_at_the_first_cap(calls, first_cap))
        return calls, tested
    return use


def test_a_cell_keeps_its_best_run_when_a_longer_retraining_stops_lower(peaky_training) -> None:
    from edgedistal.models.train import TrainConfig

    images, labels, groups, test, videos = _arm_data()
    arm = Arm("random", "baseline", 0.5, 0, np.arange(60))
    cfg = EvalConfig(max_epochs=2, ceiling_epochs=16, min_steps=10, grow=2.0)
    calls, tested = peaky_training(30)  # the first cap (30 steps) rises to its end; longer runs stop at 0.55
    rec = train_cell(arm, images, labels, groups, test, videos, TrainConfig(batch_size=4), cfg)
    assert len(calls) == 2 and rec["attempts"][1]["best_val_auc"] < rec["attempts"][0]["best_val_auc"]
    assert rec["kept_attempt"] == 0 and tested == [calls[0]]  # only the kept model is tested
    assert rec["best_val_auc"] == pytest.approx(0.5 + 0.01 * calls[0]) and rec["steps"] == calls[0]
    assert rec["step_cap"] == calls[1] and rec["reproduce_s"] == 0.0  # the protocol's reach: the last run
    assert rec["capped_improving"] is False


def test_an_old_cell_that_kept_a_worse_run_retrains_only_its_best_run(synth_manifest, tmp_path, peaky_training) -> None:
    from edgedistal.models.train import TrainConfig

    kw = dict(distilled={"m": _fake_distill_dir(synth_manifest, tmp_path / "d", (0.3,))}, out_dir=tmp_path / "e",
              progress=False, train_cfg=TrainConfig(batch_size=4, image_size=32), images=np.zeros(
                  (len(synth_manifest), 32, 32, 3), np.uint8))
    cfg = EvalConfig(budgets=(0.3,), seeds=1, max_epochs=2, min_steps=5, ceiling_epochs=2, baselines=("random",))
    calls, tested = peaky_training(10_000)  # every first run rises to its cap; nothing escalates past it
    first = run_evaluation(synth_manifest, eval_cfg=cfg, **kw)
    cells = sorted((tmp_path / "e" / "cells").glob("*.json"))
    assert len(cells) == len(first.cells) == 3
    for p in cells:  # as written before cells kept their best run: a second, lower run kept
        rec = json.loads(p.read_text())
        rec.pop("kept_attempt")
        rec["attempts"] = rec["attempts"] + [{**rec["attempts"][0], "step_cap": 2 * rec["step_cap"],
                                              "best_val_auc": 0.51, "stopped": "early_stop"}]
        rec.update(step_cap=rec["ceiling_steps"], best_val_auc=0.51, capped_improving=False)
        p.write_text(json.dumps(rec))
    calls.clear()
    tested.clear()
    again = run_evaluation(synth_manifest, eval_cfg=cfg, **kw)
    assert again.summary["resume"]["reproduced"] == 3
    first_caps = sorted(first.cells["steps"].tolist())
    assert sorted(calls) == first_caps == sorted(tested)  # one run per cell, at its best run's cap
    assert (again.cells["kept_attempt"] == 0).all() and (again.cells["reproduce_s"] > 0).all()
    assert again.cells["attempts"].apply(len).eq(2).all()  # the history is kept as it was
    calls.clear()
    run_evaluation(synth_manifest, eval_cfg=cfg, **kw)
    assert calls == []  # now finished under the rule: reused


def test_a_run_retrained_with_the_same_seed_and_cap_reproduces_on_cpu() -> None:
    from edgedistal.models.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 24)
    cfg = TrainConfig(backbone="resnet10t", image_size=32, batch_size=8, max_steps=8, augment="light",
                      device="cpu", num_threads=1, patience=3, eval_every=2, seed=3)
    a, b = (fit(x[:32], y[:32], x[32:], y[32:], cfg, progress=False) for _ in range(2))
    assert [h["val_auc"] for h in a.history] == [h["val_auc"] for h in b.history]
    assert a.best_val_auc == b.best_val_auc and a.steps == b.steps


def test_a_method_distilled_per_seed_pairs_seed_s_with_its_own_subset(synth_manifest, tmp_path) -> None:
    """``DIR_{seed}``: each paired seed trains on that seed's distillation (the method's own
    selection variance enters the interval); a fixed ``DIR`` gives every seed the same subset."""
    from edgedistal.errors import EdgedistalError
    from edgedistal.pipeline.evaluate import as_methods

    df = synth_manifest.df
    pool = np.flatnonzero((df["split"] == "train").to_numpy())
    for s in range(3):
        _fake_distill_dir(synth_manifest, tmp_path / f"d_{s}", (0.3,), seed=100 + s)
    cfg = EvalConfig(budgets=(0.3,), seeds=3, baselines=("balanced",), include_full=False)
    per_seed = as_methods({"m": str(tmp_path / "d_{seed}")})
    rows = {a.seed: a.rows for a in plan_arms(df, pool, per_seed, cfg) if a.arm == "m"}
    want = {s: np.sort(plan_arms(df, pool, {"m": tmp_path / f"d_{s}"}, cfg)[0].rows) for s in range(3)}
    assert sorted(rows) == [0, 1, 2]
    assert all(np.array_equal(np.sort(rows[s]), want[s]) for s in range(3))
    assert not np.array_equal(want[0], want[1])  # three different subsets, not one
    # their label mixes differ, yet the method's stratified baseline is one arm over the seeds
    cfg_s = EvalConfig(budgets=(0.3,), seeds=3, baselines=("stratified",), include_full=False)
    arms = plan_arms(df, pool, per_seed, cfg_s)
    shares = {a.extra["real_share"] for a in arms if a.arm == "m"}
    strat = [a for a in arms if a.kind == "baseline"]
    assert len(shares) > 1 and len({a.arm for a in strat}) == 1 and sorted(a.seed for a in strat) == [0, 1, 2]
    assert {a.extra["stratified_arm"] for a in arms if a.arm == "m"} == {strat[0].arm}
    fixed = {a.seed: a.rows for a in plan_arms(df, pool, {"m": tmp_path / "d_0"}, cfg) if a.arm == "m"}
    assert all(np.array_equal(fixed[s], fixed[0]) for s in range(3))
    with pytest.raises(EdgedistalError, match="d_3: distillation folder of m for seed 3"):  # none: said before training
        plan_arms(df, pool, per_seed, EvalConfig(budgets=(0.3,), seeds=5, baselines=("balanced",), include_full=False))
    with pytest.raises(EdgedistalError, match="x_0: distillation folder not found"):
        as_methods({"m": str(tmp_path / "x_{seed}")})


def test_screening_pairs_a_per_seed_method_with_its_own_subsets() -> None:
    rng = np.random.default_rng(1)
    n_pool, n_test = 400, 200
    x = rng.normal(size=(n_pool + n_test, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64)
    groups = np.array([f"g{i}" for i in range(len(x))])
    pool, test = np.arange(n_pool), np.arange(n_pool, n_pool + n_test)
    per_seed = {(0.1, s): pool[s * 40:(s + 1) * 40] for s in range(3)}
    cells = screen_cells(x, labels, groups, pool, test, (0.1,), 3, {"m": per_seed}, include_full=False)
    m = cells[cells["arm"] == "m"].sort_values("seed")
    assert list(m["seed"]) == [0, 1, 2] and m["n_train"].tolist() == [40, 40, 40]
    strat = cells[cells["arm"].str.startswith("stratified")]
    assert strat["arm"].nunique() == 1 and sorted(strat["seed"]) == [0, 1, 2]  # one paired arm


def test_each_kept_model_keeps_its_test_scores_and_the_verdict_gains_a_test_group_interval(
        synth_manifest, tmp_path, fake_training) -> None:
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import scores_path

    kw = dict(distilled={"m": _fake_distill_dir(synth_manifest, tmp_path / "d", (0.3,))}, out_dir=tmp_path / "e",
              progress=False, train_cfg=TrainConfig(batch_size=4, image_size=32), images=np.zeros(
                  (len(synth_manifest), 32, 32, 3), np.uint8),
              eval_cfg=EvalConfig(budgets=(0.3,), seeds=2, max_epochs=2, min_steps=5, ceiling_epochs=2,
                                  baselines=("random",), include_full=False))
    fake_training(40)
    first = run_evaluation(synth_manifest, **kw)
    cells = tmp_path / "e" / "cells"
    assert all(scores_path(cells, c).exists() for c in first.cells["cell"])
    point = first.summary["comparisons"]["m"]["points"][0]
    assert point["boot_n"] == 2 and point["boot_verdict"] == "tie"  # the fake model scores every arm alike
    assert point["boot_lo"] <= point["boot_mean"] <= point["boot_hi"]
    scores_path(cells, "random_b0.300_s1").write_bytes(b"not an array")  # a cell without usable scores
    again = run_evaluation(synth_manifest, **kw)
    assert again.summary["resume"]["reused"] == len(first.cells)
    point = again.summary["comparisons"]["m"]["points"][0]
    assert "boot_lo" not in point and point["outcome"] == first.summary["comparisons"]["m"]["points"][0]["outcome"]


def test_rescore_retrains_only_the_kept_run_of_cells_without_scores(synth_manifest, tmp_path, fake_training) -> None:
    import json

    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import scores_path

    kw = dict(distilled={"m": _fake_distill_dir(synth_manifest, tmp_path / "d", (0.3,))}, out_dir=tmp_path / "e",
              progress=False, train_cfg=TrainConfig(batch_size=4, image_size=32), images=np.zeros(
                  (len(synth_manifest), 32, 32, 3), np.uint8))
    base = dict(budgets=(0.3,), seeds=2, max_epochs=2, min_steps=5, ceiling_epochs=8, baselines=("random",),
                include_full=False)
    fake_training(None)  # never plateaus: each cell climbs 2 → 4 → 8 passes, three runs
    first = run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base), **kw)
    cells = tmp_path / "e" / "cells"
    for key in first.cells["cell"]:  # as a cell written before models kept their test scores
        scores_path(cells, key).unlink()
        path = cells / f"{key}.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "test_scores_sha"}))
    calls = fake_training(None)
    plain = run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base), **kw)
    assert calls == [] and "boot_lo" not in plain.summary["comparisons"]["m"]["points"][0]
    again = run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base, rescore=True), **kw)
    kept = first.cells.set_index("cell")
    assert again.summary["resume"]["rescored"] == len(kept)
    assert sorted(calls) == sorted(int(r["attempts"][r["kept_attempt"]]["step_cap"]) for _, r in kept.iterrows())
    redo = again.cells.set_index("cell")
    assert (redo["frame_auc"] == kept["frame_auc"]).all() and (redo["rescored_from_auc"] == kept["frame_auc"]).all()
    assert all(scores_path(cells, c).exists() for c in kept.index)
    assert "boot_lo" in again.summary["comparisons"]["m"]["points"][0]
    calls.clear()
    run_evaluation(synth_manifest, eval_cfg=EvalConfig(**base, rescore=True), **kw)
    assert calls == []  # scored now: nothing retrains


def test_kept_models_are_also_read_on_val_rows_no_arm_stopped_on(synth_dir, tmp_path, fake_training) -> None:
    """``holdout_val_auc``: an unbiased val reading beside the best val AUC (the maximum of the
    curve it stopped on); older cells without it are rescored on request."""
    import json

    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.evaluate import holdout_val_rows, shared_val_rows

    manifest = group_split(read_layout(synth_dir).manifest, (0.5, 0.3, 0.2), seed=0)
    df = manifest.df
    val = shared_val_rows(df, 12)
    hold = holdout_val_rows(df, val)
    groups = df["group"].astype(str).to_numpy()
    assert len(hold) and not set(groups[hold]) & set(groups[val]) and set(df["label"].to_numpy()[hold]) == {0, 1}
    assert (df["split"].to_numpy()[hold] == "val").all()
    kw = dict(distilled={"m": _fake_distill_dir(manifest, tmp_path / "d", (0.3,))}, out_dir=tmp_path / "e",
              progress=False, train_cfg=TrainConfig(batch_size=4, image_size=32), images=np.zeros(
                  (len(manifest), 32, 32, 3), np.uint8))
    base = dict(budgets=(0.3,), seeds=2, max_epochs=2, min_steps=5, ceiling_epochs=2, baselines=("random",),
                include_full=False, val_source="split", val_max=12)
    fake_training(40)
    first = run_evaluation(manifest, eval_cfg=EvalConfig(**base), **kw)
    assert first.cells["holdout_val_auc"].between(0, 1).all()
    path = tmp_path / "e" / "cells" / "m_b0.300_s0.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "holdout_val_auc": None}))  # an older cell
    calls = fake_training(40)
    again = run_evaluation(manifest, eval_cfg=EvalConfig(**base, rescore=True), **kw)
    assert len(calls) == 1 and again.summary["resume"]["rescored"] == 1
    assert again.cells["holdout_val_auc"].notna().all()
