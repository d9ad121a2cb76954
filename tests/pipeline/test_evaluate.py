"""Distilled vs random vs full evaluation: arithmetic, subsets, resume (tiny models, few steps)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgedistal.data.distilled import subset_at
from edgedistal.pipeline.evaluate import (
    EvalConfig,
    aubc,
    balanced_subset,
    carve_val,
    gain_over_chance,
    random_subset,
    run_evaluation,
    stratified_subset,
    summarise,
)


def test_gain_over_chance_hand_computed() -> None:
    assert gain_over_chance(0.8, 0.9) == pytest.approx(0.75)
    assert gain_over_chance(0.5, 0.7) == pytest.approx(0.0)
    assert gain_over_chance(0.95, 0.9) == pytest.approx(1.125)  # a subset may beat the full pool
    assert math.isnan(gain_over_chance(0.7, 0.5))  # no gain to keep
    assert math.isnan(gain_over_chance(0.7, float("nan")))


def test_aubc_trapezoid_normalised_by_range() -> None:
    # (0.1*(0.6+0.7)/2 + 0.2*(0.7+0.8)/2) / (0.4-0.1) = (0.065 + 0.15) / 0.3
    assert aubc([0.1, 0.2, 0.4], [0.6, 0.7, 0.8]) == pytest.approx(0.215 / 0.3)
    assert aubc([0.4, 0.1, 0.2], [0.8, 0.6, 0.7]) == pytest.approx(0.215 / 0.3)  # order-free
    assert aubc([0.2], [0.7]) == pytest.approx(0.7)
    assert aubc([0.1, 0.3], [0.6, 0.6]) == pytest.approx(0.6)  # flat curve → its level


def _groups(n_groups: int = 30, per: tuple[int, ...] = (1, 3, 5)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([[f"g{i}"] * int(rng.choice(per)) for i in range(n_groups)])


def test_random_subset_same_size_seeded_and_group_aware() -> None:
    groups = _groups()
    for mode in ("samples", "groups"):
        a = random_subset(groups, 23, seed=1, mode=mode)
        assert len(a) == 23 and len(np.unique(a)) == 23
        assert a.min() >= 0 and a.max() < len(groups)
        assert np.array_equal(a, random_subset(groups, 23, seed=1, mode=mode))
        assert not np.array_equal(a, random_subset(groups, 23, seed=2, mode=mode))
    # groups mode takes whole groups: at most one group is cut
    a = random_subset(groups, 23, seed=3, mode="groups")
    taken = pd.Series(groups[a]).value_counts()
    total = pd.Series(groups).value_counts()
    assert int((taken < total[taken.index]).sum()) <= 1


def test_carve_val_never_splits_a_group() -> None:
    groups = _groups()
    tr, va = carve_val(groups, 0.2, seed=0)
    assert len(tr) + len(va) == len(groups) and len(va) > 0
    assert not set(groups[tr]) & set(groups[va])
    assert 0.1 < len(va) / len(groups) < 0.4


def _fake_cells(d: dict, r: dict, bal: dict, full=(0.85, 0.87)) -> pd.DataFrame:
    """Cells of one method ('m'), random, balanced and the method's stratified arm (= balanced + 0.01)."""
    rows = []
    for s in range(len(full)):
        for b in d:
            base = {"budget": b, "seed": s, "wall_s": 1.0, "n_train": 10, "steps": 5, "samples_seen": 50,
                    "converged": True}
            rows.append({**base, "arm": "m", "kind": "distilled", "frame_auc": d[b][s],
                         "stratified_arm": "stratified-r50", "cell": f"m_{b}_{s}"})
            rows.append({**base, "arm": "random", "kind": "baseline", "frame_auc": r[b][s], "cell": f"r_{b}_{s}"})
            rows.append({**base, "arm": "balanced", "kind": "baseline", "frame_auc": bal[b][s], "cell": f"b_{b}_{s}"})
            rows.append({**base, "arm": "stratified-r50", "kind": "baseline", "frame_auc": bal[b][s] - 0.01,
                         "cell": f"s_{b}_{s}"})
        rows.append({"arm": "full", "kind": "full", "budget": 1.0, "seed": s, "frame_auc": full[s], "wall_s": 4.0,
                     "n_train": 100, "steps": 20, "samples_seen": 200, "converged": True, "cell": f"full_{s}"})
    return pd.DataFrame(rows)


def test_strongest_baseline_is_picked_per_budget_and_ties_are_ties() -> None:
    d = {0.1: [0.70, 0.72], 0.2: [0.80, 0.78], 0.3: [0.90, 0.90]}
    r = {0.1: [0.66, 0.68], 0.2: [0.81, 0.81], 0.3: [0.76, 0.78]}  # random is strongest at 20 %
    bal = {0.1: [0.69, 0.69], 0.2: [0.70, 0.70], 0.3: [0.80, 0.80]}  # balanced strongest at 10 % and 30 %
    s = summarise(_fake_cells(d, r, bal), [0.1, 0.2, 0.3])
    pts = {p["budget"]: p for p in s["comparisons"]["m"]["points"]}
    assert pts[0.1]["baseline"] == "balanced" and pts[0.2]["baseline"] == "random"
    assert pts[0.3]["baseline"] == "balanced"
    # 10 %: 0.71 ± 0.01 vs 0.69 ± 0 → diff 0.02 = 2 std: a tie; 20 %: 0.79 vs 0.81, also within 2 std
    assert pts[0.1]["outcome"] == "tie" and pts[0.2]["outcome"] == "tie"
    assert pts[0.3]["outcome"] == "win" and pts[0.3]["diff"] == pytest.approx(0.10)
    comp = s["comparisons"]["m"]
    assert (comp["wins"], comp["ties"], comp["losses"]) == (1, 2, 0)
    assert comp["aubc"] == pytest.approx(aubc([0.1, 0.2, 0.3], [0.71, 0.79, 0.90]))
    assert comp["aubc_baseline"] in ("random", "balanced", "stratified")
    at20 = s["curves"]["m"]["points"][1]
    assert at20["gain_kept"] == pytest.approx((0.79 - 0.5) / (0.86 - 0.5))
    assert at20["samples_seen_vs_full"] == pytest.approx(0.25) and at20["wall_s_vs_full"] == pytest.approx(0.25)
    assert "m beats the strongest baseline" in s["conclusion"] and "1/3" in s["conclusion"]
    assert "25% of the full arm's training time" in s["conclusion"]


def test_no_method_beating_the_baseline_is_said_plainly_and_gain_over_one_warns() -> None:
    same = {0.1: [0.70, 0.72], 0.2: [0.80, 0.78]}
    s = summarise(_fake_cells(same, same, same, full=(0.75, 0.75)), [0.1, 0.2])
    # stratified = balanced − 0.01 in every seed: a paired win over that weaker arm, never the strongest
    assert s["conclusion"].startswith("m beat only weaker baselines") and "never the strongest" in s["conclusion"]
    assert any("more than 100 %" in w for w in s["warnings"])  # 0.79 > full 0.75
    one = summarise(_fake_cells(same, same, same, full=(0.9,)).query("seed == 0"), [0.1, 0.2])
    assert {p["outcome"] for p in one["comparisons"]["m"]["points"]} == {"1 seed"}
    assert one["conclusion"].startswith("1 seed per arm")


def test_baselines_have_the_promised_label_mix_and_spread() -> None:
    labels = np.array([0] * 20 + [1] * 80)
    groups = np.array([f"g{i % 20}" for i in range(100)])
    bal = balanced_subset(labels, 30, seed=0)
    assert len(bal) == 30 and (labels[bal] == 0).sum() == 15
    strat = stratified_subset(labels, groups, 40, 0.25, seed=1)
    assert len(strat) == 40 and (labels[strat] == 0).sum() == 10
    fakes = strat[labels[strat] == 1]
    assert pd.Series(groups[fakes]).value_counts().max() <= math.ceil(30 / 20)  # spread over groups
    assert np.array_equal(strat, stratified_subset(labels, groups, 40, 0.25, seed=1))
    short = balanced_subset(labels, 60, seed=0)  # only 20 reals: all of them, the rest fakes
    assert (labels[short] == 0).sum() == 20 and len(short) == 60


def test_distilled_subset_falls_back_to_pick_order(tmp_path: Path) -> None:
    df = pd.DataFrame({"sample_id": [f"s{i}" for i in range(10)], "round": [1] * 5 + [0] * 5,
                       "rank": [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]})
    df.to_parquet(tmp_path / "distilled.parquet")
    (tmp_path / "config.json").write_text('{"pool": 40}')
    sub = subset_at(tmp_path, 0.1)  # 4 rows, the first picks (round 0)
    assert sub["sample_id"].tolist() == ["s5", "s6", "s7", "s8"]
    from edgedistal.errors import EdgedistalError

    with pytest.raises(EdgedistalError):
        subset_at(tmp_path, 0.5)  # needs 20 rows, has 10


# -- the full loop on generated data ----------------------------------------------------------
@pytest.fixture()
def synth_manifest(synth_dir: Path):
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split

    return group_split(read_layout(synth_dir).manifest, (0.6, 0.1, 0.3), seed=0)


def _fake_distill_dir(manifest, out: Path, budgets, seed: int = 5) -> Path:
    """A distill folder as `edgedistal distill` writes it: milestone manifests of pool rows."""
    pool = manifest.split("train").df
    order = np.random.default_rng(seed).permutation(len(pool))
    for b in budgets:
        n = int(round(b * len(pool)))
        df = pool.iloc[order[:n]].assign(round=0, rank=np.arange(n))
        (out / "milestones").mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / "milestones" / f"budget_{b:.3f}.parquet")
    return out


def _tiny_cfg(**kw):
    from edgedistal.models.train import TrainConfig

    base = dict(backbone="resnet10t", image_size=32, batch_size=8, max_steps=2, augment="none",
                schedule="cosine", device="cpu", num_threads=1)
    return TrainConfig(**(base | kw))


def _count_fits(monkeypatch) -> dict:
    import edgedistal.models.train as train_mod

    calls = {"n": 0}
    real_fit = train_mod.fit

    def counting_fit(*args, **kwargs):
        calls["n"] += 1
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "fit", counting_fit)
    return calls


def test_run_evaluation_resumes_only_matching_cells(synth_manifest, tmp_path: Path, monkeypatch) -> None:
    budgets = (0.2, 0.4)
    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", budgets)
    calls = _count_fits(monkeypatch)
    ecfg = EvalConfig(budgets=budgets, seeds=1, protocol="steps")
    kw = dict(distilled={"m": ddir}, eval_cfg=ecfg, out_dir=tmp_path / "eval", progress=False)
    res = run_evaluation(synth_manifest, train_cfg=_tiny_cfg(), **kw)
    arms = set(res.cells["arm"])
    strat = {a for a in arms if a.startswith("stratified")}
    assert arms == {"m", "random", "balanced", "rs2", "full"} | strat
    per_b = res.cells[res.cells["arm"].str.startswith("stratified")].groupby("budget").size()
    assert (per_b == 1).all() and len(per_b) == len(budgets)  # one, with the method's mix at that budget
    m_cells = res.cells[res.cells["arm"] == "m"].set_index("budget")
    for b in budgets:
        arm = m_cells.loc[b, "stratified_arm"]
        strat_cell = res.cells[(res.cells["arm"] == arm) & (res.cells["budget"] == b)].iloc[0]
        share = strat_cell["n_real"] / (strat_cell["n_real"] + strat_cell["n_fake"])
        assert share == pytest.approx(m_cells.loc[b, "real_share"], abs=0.02)
    per_budget = 5  # m, random, balanced, stratified, rs2
    assert calls["n"] == per_budget * len(budgets) + 1
    cells = res.cells.set_index(["arm", "budget"])
    pool_n = int((synth_manifest.df["split"] == "train").sum())
    for b in budgets:
        n = int(round(b * pool_n))
        at = res.cells[(res.cells["budget"] == b) & (res.cells["kind"] == "baseline")]
        assert len(at) == 3 and (at["n_train"] == n).all()
        rs2 = res.cells[(res.cells["budget"] == b) & (res.cells["arm"] == "rs2")].iloc[0]
        ref = at[at["arm"] == "random"].iloc[0]
        assert rs2["n_train"] == pool_n and rs2["epoch_rows"] == ref["n_train"]
        assert rs2["samples_seen"] == ref["samples_seen"] and rs2["steps"] == ref["steps"]
    assert (res.cells["steps"] == 2).all() and (res.cells["protocol"] == "steps").all()
    assert cells.loc[("full", 1.0), "n_train"] == pool_n
    assert (tmp_path / "eval" / "summary.json").exists() and (tmp_path / "eval" / "cells.parquet").exists()

    calls["n"] = 0
    again = run_evaluation(synth_manifest, train_cfg=_tiny_cfg(), **kw)
    assert calls["n"] == 0  # every cell on disk with a matching fingerprint
    assert again.summary["resume"]["reused"] == len(res.cells)

    # another step count: every cell is stale and retrains; the summary names the new setting
    calls["n"] = 0
    changed = run_evaluation(synth_manifest, train_cfg=_tiny_cfg(max_steps=3), **kw)
    assert calls["n"] == len(res.cells) and (changed.cells["steps"] == 3).all()
    assert changed.summary["resume"]["stale_retrained"] == len(res.cells)

    # another distilled folder under the same name: only that method's cells retrain
    other = _fake_distill_dir(synth_manifest, tmp_path / "other", budgets, seed=9)
    calls["n"] = 0
    moved = run_evaluation(synth_manifest, train_cfg=_tiny_cfg(max_steps=3),
                           **(kw | {"distilled": {"m": other}}))
    # the method's cells, plus a stratified arm wherever its label mix moved
    n_new_strat = len({a for a in moved.cells["arm"] if a.startswith("stratified")} - strat)
    assert calls["n"] == len(budgets) + n_new_strat
    assert moved.summary["methods"]["m"] == str(other)


def test_truncated_cell_is_named_and_retrained(synth_manifest, tmp_path: Path, monkeypatch) -> None:
    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", (0.3,))
    kw = dict(distilled={"m": ddir}, train_cfg=_tiny_cfg(), out_dir=tmp_path / "eval", progress=False,
              eval_cfg=EvalConfig(budgets=(0.3,), seeds=1, protocol="steps", include_full=False))
    run_evaluation(synth_manifest, **kw)
    cell = tmp_path / "eval" / "cells" / "random_b0.300_s0.json"
    cell.write_text(cell.read_text()[:40])  # a torso, as a full disk would leave
    calls = _count_fits(monkeypatch)
    said: list[str] = []
    res = run_evaluation(synth_manifest, **kw, log=said.append)
    assert calls["n"] == 1
    assert any(str(cell) in line and "retraining" in line for line in said)
    assert res.summary["resume"]["corrupt_retrained"] == 1
    # a long run is not silent in a log: it is announced before it trains, its result after
    start = [i for i, line in enumerate(said) if "random_b0.300_s0: training" in line and "cap" in line]
    end = [i for i, line in enumerate(said) if "random_b0.300_s0: n=" in line]
    assert len(start) == 1 and len(end) == 1 and start[0] < end[0]


def test_converged_protocol_carves_val_and_scales_the_cap(synth_manifest, tmp_path: Path) -> None:
    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", (0.3,))
    ecfg = EvalConfig(budgets=(0.3,), seeds=1, val_fraction=0.25, max_epochs=2, min_steps=3, patience=2,
                      baselines=("random",))
    res = run_evaluation(synth_manifest, distilled={"m": ddir}, train_cfg=_tiny_cfg(), eval_cfg=ecfg,
                         out_dir=tmp_path / "eval", progress=False)
    assert set(res.cells["arm"]) == {"m", "random", "full"}
    assert (res.cells["n_val"] > 0).all() and res.cells["best_val_auc"].notna().all()
    cap = res.cells.set_index("arm")["step_cap"]
    assert cap["full"] > cap["random"] >= 3  # the full pool gets as many passes as a subset
    assert res.cells["converged"].isin([True, False]).all()
    assert res.summary["full"]["all_converged"] in (True, False)


def test_cli_compares_several_methods_in_one_table(synth_manifest, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgedistal.commands.evaluate import evaluate

    mpath = synth_manifest.save(tmp_path / "m.parquet")
    d1 = _fake_distill_dir(synth_manifest, tmp_path / "d1", (0.3,))
    d2 = _fake_distill_dir(synth_manifest, tmp_path / "d2", (0.3,))
    out = tmp_path / "eval"
    res = CliRunner().invoke(evaluate, [
        "--manifest", str(mpath), "--distilled", f"one={d1}", "--distilled", f"two={d2}", "--budgets", "0.3",
        "--seeds", "1", "--protocol", "steps", "--steps", "2", "--backbone", "resnet10t", "--image-size", "32",
        "--train-batch-size", "8", "--augment", "none", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 seed per arm" in res.output
    assert "1 seed, no spread" in res.output  # every summary warning reaches the terminal, not only chance
    stems = sorted(p.stem for p in (out / "cells").glob("*.json"))
    assert {"one_b0.300_s0", "two_b0.300_s0", "random_b0.300_s0", "balanced_b0.300_s0", "full_s0"} <= set(stems)
    assert sum(s.startswith("stratified") for s in stems) >= 1  # shared by both methods when mixes agree
    md = (out / "report.md").read_text()
    assert "strongest baseline" in md and "one" in md and "two" in md and "1 seed, no spread" in md
    refused = tmp_path / "refused"
    bad = CliRunner().invoke(evaluate, ["--manifest", str(mpath), "--distilled", str(d1), "--budgets", "x",
                                        "--out", str(refused)])
    assert bad.exit_code != 0
    clash = CliRunner().invoke(evaluate, ["--manifest", str(mpath), "--distilled", f"random={d1}",
                                          "--out", str(refused)])
    assert clash.exit_code != 0 and "not usable" in str(clash.exception)
    assert not refused.exists()  # a refused run leaves no folder behind


def test_without_a_distilled_dir_it_distils_once_with_budget_milestones(synth_manifest, tmp_path: Path) -> None:
    from edgedistal.models.train import TrainConfig
    from edgedistal.pipeline.distill import DistillConfig, learner_train

    dcfg = DistillConfig(budget=0.1, seed_size=0.1, rounds=2, device="cpu", num_threads=1,
                         train=learner_train(image_size=32, max_steps=3, batch_size=8))
    cfg = TrainConfig(image_size=32, batch_size=8, max_steps=3, augment="none", schedule="cosine",
                      device="cpu", num_threads=1)
    res = run_evaluation(synth_manifest, train_cfg=cfg, distill_cfg=dcfg, out_dir=tmp_path / "eval",
                         progress=False, eval_cfg=EvalConfig(budgets=(0.2, 0.4), seeds=1, include_full=False,
                                                             protocol="steps", baselines=("random",)))
    for b in ("0.200", "0.400"):
        assert (tmp_path / "eval" / "distill" / "milestones" / f"budget_{b}.parquet").exists()
    assert len(res.cells) == 4
    pool_n = int((synth_manifest.df["split"] == "train").sum())
    sizes = res.cells.groupby("budget")["n_train"].first()
    assert sizes[0.4] == round(0.4 * pool_n) and sizes[0.2] == round(0.2 * pool_n)


def test_shared_val_split_stops_every_arm_on_the_same_rows(synth_manifest, tmp_path: Path) -> None:
    from edgedistal.pipeline.evaluate import train_fingerprint

    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", (0.3,))
    df = synth_manifest.df
    n_val = int((df["split"] == "val").sum())
    pool_n = int((df["split"] == "train").sum())
    ecfg = EvalConfig(budgets=(0.3,), seeds=1, val_source="split", max_epochs=2, min_steps=3, patience=2,
                      baselines=("random",), include_full=False)
    res = run_evaluation(synth_manifest, distilled={"m": ddir}, train_cfg=_tiny_cfg(), eval_cfg=ecfg,
                         out_dir=tmp_path / "eval", progress=False)
    cells = res.cells.set_index("arm")
    assert (cells["n_val"] == n_val).all() and (cells["val_source"] == "split").all()
    assert cells.loc["random", "n_train"] == int(round(0.3 * pool_n))  # no carve: every budget row trains
    assert cells["best_val_auc"].notna().all()
    # the carve's fingerprints are unchanged by the new option; split is a different recipe
    carve = train_fingerprint(_tiny_cfg(), EvalConfig())
    assert "val_source" not in carve["protocol"]
    assert train_fingerprint(_tiny_cfg(), ecfg) != carve


def test_shared_val_rows_cap_is_whole_groups_and_fixed(synth_manifest) -> None:
    from edgedistal.errors import EdgedistalError
    from edgedistal.pipeline.evaluate import shared_val_rows

    df = synth_manifest.df
    val = np.flatnonzero((df["split"] == "val").to_numpy())
    assert np.array_equal(shared_val_rows(df, None), val)
    cap = len(val) // 2
    some = shared_val_rows(df, cap)
    assert len(some) == cap and set(some) <= set(val)
    assert np.array_equal(some, shared_val_rows(df, cap))  # the same draw every time
    groups = df["group"].astype(str).to_numpy()
    counts = pd.Series(groups[some]).value_counts()
    assert int((counts < pd.Series(groups[val]).value_counts()[counts.index]).sum()) <= 1  # one group cut at most
    with pytest.raises(EdgedistalError, match="no val split"):
        shared_val_rows(df.assign(split=df["split"].replace("val", "test")), None)
