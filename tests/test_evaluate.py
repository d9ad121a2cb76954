"""Distilled vs random vs full evaluation: arithmetic, subsets, resume (tiny models, few steps)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgedistal.evaluate import (
    EvalConfig,
    aubc,
    carve_val,
    distilled_subset,
    gain_over_chance,
    random_subset,
    run_evaluation,
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


def _fake_cells() -> pd.DataFrame:
    rows = []
    d = {0.1: [0.70, 0.72], 0.2: [0.80, 0.78], 0.3: [0.82, 0.84]}
    r = {0.1: [0.66, 0.68], 0.2: [0.81, 0.81], 0.3: [0.76, 0.78]}
    for s in range(2):
        for b in d:
            rows.append({"method": "distilled", "budget": b, "seed": s, "frame_auc": d[b][s], "wall_s": 1.0,
                         "n_train": 10, "steps": 5, "samples_seen": 50})
            rows.append({"method": "random", "budget": b, "seed": s, "frame_auc": r[b][s], "wall_s": 1.0,
                         "n_train": 10, "steps": 5, "samples_seen": 50})
        rows.append({"method": "full", "budget": 1.0, "seed": s, "frame_auc": [0.85, 0.87][s], "wall_s": 3.0,
                     "n_train": 100, "steps": 5, "samples_seen": 50})
    return pd.DataFrame(rows)


def test_summarise_wins_gain_and_aubc() -> None:
    s = summarise(_fake_cells(), [0.1, 0.2, 0.3])
    assert s["wins_vs_random"] == 2 and s["compared_budgets"] == 3  # loses at 20%
    at20 = s["curves"]["distilled"]["points"][1]
    assert at20["frame_auc_mean"] == pytest.approx(0.79)
    assert at20["frame_auc_std"] == pytest.approx(0.01)
    assert at20["gain_kept"] == pytest.approx((0.79 - 0.5) / (0.86 - 0.5))
    assert s["aubc_distilled"] == pytest.approx(aubc([0.1, 0.2, 0.3], [0.71, 0.79, 0.83]))
    assert s["aubc_random"] == pytest.approx(aubc([0.1, 0.2, 0.3], [0.67, 0.81, 0.77]))
    assert "Distilled 20%" in s["conclusion"] and "2/3" in s["conclusion"]
    assert f"{at20['gain_kept']:.0%}" in s["conclusion"]


def test_distilled_subset_falls_back_to_pick_order(tmp_path: Path) -> None:
    df = pd.DataFrame({"sample_id": [f"s{i}" for i in range(10)], "round": [1] * 5 + [0] * 5,
                       "rank": [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]})
    df.to_parquet(tmp_path / "distilled.parquet")
    (tmp_path / "config.json").write_text('{"pool": 40}')
    sub = distilled_subset(tmp_path, 0.1)  # 4 rows, the first picks (round 0)
    assert sub["sample_id"].tolist() == ["s5", "s6", "s7", "s8"]
    from edgedistal.errors import EdgedistalError

    with pytest.raises(EdgedistalError):
        distilled_subset(tmp_path, 0.5)  # needs 20 rows, has 10


# -- the full loop on generated data ----------------------------------------------------------
@pytest.fixture()
def synth_manifest(synth_dir: Path):
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split

    return group_split(read_layout(synth_dir).manifest, (0.6, 0.1, 0.3), seed=0)


def _fake_distill_dir(manifest, out: Path, budgets) -> Path:
    """A distill folder as `edgedistal distill` writes it: milestone manifests of pool rows."""
    pool = manifest.split("train").df
    order = np.random.default_rng(5).permutation(len(pool))
    for b in budgets:
        n = int(round(b * len(pool)))
        df = pool.iloc[order[:n]].assign(round=0, rank=np.arange(n))
        (out / "milestones").mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / "milestones" / f"budget_{b:.3f}.parquet")
    return out


def test_run_evaluation_resumes_and_matches_sizes(synth_manifest, tmp_path: Path, monkeypatch) -> None:
    import edgedistal.models.train as train_mod
    from edgedistal.models.train import TrainConfig

    budgets = (0.2, 0.4)
    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", budgets)
    calls = {"n": 0}
    real_fit = train_mod.fit

    def counting_fit(*args, **kwargs):
        calls["n"] += 1
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "fit", counting_fit)
    cfg = TrainConfig(backbone="resnet18", image_size=32, batch_size=8, max_steps=2, augment="none", schedule="cosine",
                      device="cpu", num_threads=1)
    kw = dict(distilled_dir=ddir, budgets=budgets, seeds=1, train_cfg=cfg, out_dir=tmp_path / "eval",
              progress=False)
    res = run_evaluation(synth_manifest, **kw)
    assert calls["n"] == 2 * len(budgets) + 1
    cells = res.cells.set_index(["method", "budget"])
    for b in budgets:
        assert cells.loc[("random", b), "n_train"] == cells.loc[("distilled", b), "n_train"]
    assert (res.cells["steps"] == 2).all() and (res.cells["protocol"] == "steps").all()
    assert res.cells["frame_auc"].between(0, 1).all()
    pool_n = int((synth_manifest.df["split"] == "train").sum())
    assert cells.loc[("full", 1.0), "n_train"] == pool_n
    assert (tmp_path / "eval" / "summary.json").exists()

    calls["n"] = 0
    again = run_evaluation(synth_manifest, **kw)
    assert calls["n"] == 0  # every cell was on disk
    assert again.summary["aubc_distilled"] == pytest.approx(res.summary["aubc_distilled"])

    (tmp_path / "eval" / "cells" / "random_b0.400_s0.json").unlink()
    run_evaluation(synth_manifest, **kw)
    assert calls["n"] == 1  # only the missing cell retrains


def test_early_stop_protocol_carves_val_from_the_arm(synth_manifest, tmp_path: Path) -> None:
    from edgedistal.models.train import TrainConfig

    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", (0.5,))
    cfg = TrainConfig(backbone="resnet18", image_size=32, batch_size=8, max_steps=4, eval_every=2, schedule="cosine",
                      patience=1, augment="none", device="cpu", num_threads=1)
    res = run_evaluation(synth_manifest, distilled_dir=ddir, budgets=(0.5,), seeds=1, train_cfg=cfg,
                         out_dir=tmp_path / "eval", progress=False,
                         eval_cfg=EvalConfig(budgets=(0.5,), seeds=1, protocol="early_stop",
                                             val_fraction=0.25, include_full=False))
    assert set(res.cells["method"]) == {"distilled", "random"}
    assert (res.cells["n_val"] > 0).all()
    assert res.cells["best_val_auc"].notna().all()


def test_cli_comparison_mode_writes_cells_summary_and_report(synth_manifest, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgedistal.commands.evaluate import evaluate

    mpath = synth_manifest.save(tmp_path / "m.parquet")
    ddir = _fake_distill_dir(synth_manifest, tmp_path / "distill", (0.3,))
    out = tmp_path / "eval"
    res = CliRunner().invoke(evaluate, [
        "--manifest", str(mpath), "--distilled", str(ddir), "--budgets", "0.3", "--seeds", "1",
        "--steps", "6", "--image-size", "32", "--train-batch-size", "8", "--augment", "none",
        "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Distilled 30%" in res.output
    assert sorted(p.stem for p in (out / "cells").glob("*.json")) == [
        "distilled_b0.300_s0", "full_s0", "random_b0.300_s0"]
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    bad = CliRunner().invoke(evaluate, ["--manifest", str(mpath), "--distilled", str(ddir), "--budgets", "x"])
    assert bad.exit_code != 0


def test_without_a_distilled_dir_it_distils_once_with_budget_milestones(synth_manifest, tmp_path: Path) -> None:
    from edgedistal.distill import DistillConfig
    from edgedistal.models.train import TrainConfig

    dcfg = DistillConfig(budget=0.1, seed_size=0.1, rounds=2, image_size=32, steps=3, batch_size=8,
                         device="cpu", num_threads=1)
    cfg = TrainConfig(image_size=32, batch_size=8, max_steps=3, augment="none", schedule="cosine",
                      device="cpu", num_threads=1)
    res = run_evaluation(synth_manifest, budgets=(0.2, 0.4), seeds=1, train_cfg=cfg, distill_cfg=dcfg,
                         out_dir=tmp_path / "eval", progress=False,
                         eval_cfg=EvalConfig(budgets=(0.2, 0.4), seeds=1, include_full=False))
    for b in ("0.200", "0.400"):
        assert (tmp_path / "eval" / "distill" / "milestones" / f"budget_{b}.parquet").exists()
    assert len(res.cells) == 4
    pool_n = int((synth_manifest.df["split"] == "train").sum())
    sizes = res.cells.groupby("budget")["n_train"].first()
    assert sizes[0.4] == round(0.4 * pool_n) and sizes[0.2] == round(0.2 * pool_n)
