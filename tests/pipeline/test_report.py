"""Report: Markdown + self-contained HTML with embedded figures from a small fake run folder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgedistal.pipeline.evaluate import summarise
from edgedistal.pipeline.report import find_run, write_report
from edgedistal.utils.io import write_json_atomic


def _run_dir(root: Path, with_eval: bool = True) -> Path:
    rng = np.random.default_rng(0)
    dd = root / "distill"
    dd.mkdir(parents=True)
    n = 200
    rank = np.full(n, -1)
    picked = rng.choice(n, 40, replace=False)
    rank[picked] = np.arange(40)
    prob = rng.uniform(size=n)
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "label": rng.integers(0, 2, n),
                  "group": [f"g{i // 4}" for i in range(n)], "prob": prob,
                  "entropy": -(prob * np.log(prob) + (1 - prob) * np.log(1 - prob)),
                  "rank": rank, "picked_round": np.where(rank >= 0, rank // 10, -1)}
                 ).to_parquet(dd / "pool_scores.parquet")
    np.save(dd / "embeddings.npy", rng.normal(size=(n, 8)).astype(np.float32))
    pd.DataFrame({"round": range(4), "strategy": ["random", "hybrid", "hybrid", "hybrid"],
                  "picked": [10] * 4, "labelled": [10, 20, 30, 40], "n_real": [3, 5, 4, 6],
                  "n_fake": [7, 5, 6, 4], "groups_new": [9, 8, 7, 6], "groups_covered": [9, 17, 24, 30],
                  "methods": [json.dumps({"real": 3, "fake": 7})] * 4, "val_auc": [0.6, 0.7, 0.72, 0.75]}
                 ).to_parquet(dd / "rounds.parquet")
    pd.DataFrame({"sample_id": [f"s{i}" for i in picked]}).to_parquet(dd / "distilled.parquet")
    write_json_atomic(dd / "config.json", {"mode": "proxy", "pool": n, "selected": 40, "targets": [10, 20, 30, 40],
                                           "groups_covered": 30, "groups_in_pool": 50, "config": {"strategy": "hybrid"}})
    if with_eval:
        ev = root / "eval"
        (ev / "cells").mkdir(parents=True)
        rows = []
        base = {"wall_s": 2.0, "samples_seen": 640, "n_train": 20, "n_real": 10, "n_fake": 10, "converged": True}
        for s in range(2):
            for b, (d, r) in {0.1: (0.7, 0.65), 0.2: (0.78, 0.7), 0.3: (0.8, 0.74)}.items():
                rows += [{**base, "arm": "hybrid", "kind": "distilled", "budget": b, "seed": s,
                          "frame_auc": d + 0.01 * s, "video_auc": d, "stratified_arm": "stratified-r50"},
                         {**base, "arm": "random", "kind": "baseline", "budget": b, "seed": s,
                          "frame_auc": r - 0.01 * s, "video_auc": r},
                         {**base, "arm": "balanced", "kind": "baseline", "budget": b, "seed": s,
                          "frame_auc": r, "video_auc": r},
                         {**base, "arm": "stratified-r50", "kind": "baseline", "budget": b, "seed": s,
                          "frame_auc": d - 0.004, "video_auc": r}]
            rows.append({**base, "arm": "full", "kind": "full", "budget": 1.0, "seed": s, "frame_auc": 0.82,
                         "video_auc": 0.82, "wall_s": 8.0, "samples_seen": 2560, "n_train": 200})
        summary = summarise(pd.DataFrame(rows), [0.1, 0.2, 0.3])
        summary.update({"protocol": "converged", "random_mode": "samples", "pool_size": n, "test_size": 50,
                        "methods": {"hybrid": str(dd)}, "finished_cells": len(rows), "planned_cells": len(rows)})
        write_json_atomic(ev / "summary.json", summary)
        write_json_atomic(ev / "eval_config.json", {"eval": {"protocol": "converged", "seeds": 2,
                                                             "val_fraction": 0.15, "max_epochs": 30},
                                                    "train": {"backbone": "resnet18", "max_steps": 10},
                                                    "distilled_dir": str(dd)})
    return root


def test_report_renders_markdown_and_self_contained_html(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    dirs = find_run(run)
    assert dirs.eval_dir == run / "eval" and dirs.distill_dir == run / "distill"
    res = write_report(run)
    md = Path(res["markdown"]).read_text()
    page = Path(res["html"]).read_text()
    assert set(res["figures"]) == {"budget_curve", "compute", "composition", "scores", "embeddings"}
    first_para = next(line for line in md.splitlines()[1:] if line.strip())
    # the conclusion leads and names the strongest baseline: hybrid's paired interval against
    # stratified includes 0 (a tie); it beats balanced (weaker) at 20 and 30 % — said as such, with where
    assert first_para.startswith("**hybrid beat only weaker baselines (balanced at 20 %, 30 %), never the strongest")
    assert "stratified (50 % real)" in first_para and "95 % CI" in first_para
    for name in res["figures"]:
        assert f"(figures/{name}.png)" in md
        assert (run / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(res["figures"])
    assert all(base64.b64decode(b)[:4] == b"\x89PNG" for b in imgs)
    assert "src=\"figures/" not in page and "<table" in page  # nothing external
    assert "0.785 ± 0.005" in md  # hybrid 20% mean ± std
    assert ("| hybrid | 20% | 0.785 ± 0.005 | stratified (50 % real) | 0.776 ± 0.000 | +0.009 | "
            "[-0.055, +0.073] | 2 | tie | tie |") in md
    assert "2× the larger seed standard deviation" in md
    assert "| 20% | hybrid | distilled |" in md and "| 0.25 | 0.25 |" in md  # compute shares of the full arm
    assert "from scratch. Pool" in md  # where every arm's weights start, said in the protocol line


def test_report_says_every_arm_started_from_the_embedder(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    cfg_path = run / "eval" / "eval_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["init"] = "/somewhere/embedder.pt"
    write_json_atomic(cfg_path, cfg)
    md = Path(write_report(run)["markdown"]).read_text()
    assert "every arm initialised from the embedder embedder.pt (`--init`). Pool" in md
    assert "from scratch" not in md


def test_report_title_names_the_run_unless_told(tmp_path: Path) -> None:
    """A benchmark keeps its cells in a shared work folder; its report is titled by the result's
    own name, not the folder's."""
    run = _run_dir(tmp_path / "shared_work")
    assert Path(write_report(run)["markdown"]).read_text().startswith("# edgedistal report: shared_work\n")
    md = Path(write_report(run, tmp_path / "res", name="group_init_10")["markdown"]).read_text()
    assert md.startswith("# edgedistal report: group_init_10\n")


def test_report_of_a_distill_folder_only(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run", with_eval=False) / "distill"
    res = write_report(run, tmp_path / "out")
    assert "budget_curve" not in res["figures"] and "composition" in res["figures"]
    assert "No evaluation" in Path(res["markdown"]).read_text()


def test_report_cli_and_bad_folder(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgedistal.commands.report import report
    from edgedistal.errors import EdgedistalError

    run = _run_dir(tmp_path / "run")
    out = CliRunner().invoke(report, [str(run), "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert "hybrid beat only weaker baselines" in out.output and (tmp_path / "r" / "report.html").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgedistalError, match="neither an evaluation"):
        find_run(tmp_path / "empty")


def test_scores_figure_skips_columns_without_values():
    """An embedder's pool scores have no probability (NaN): no empty, warning-raising histogram."""
    import numpy as np
    import pandas as pd

    from edgedistal.pipeline.report import fig_scores

    pool = pd.DataFrame({"prob": np.full(20, np.nan), "rank": np.r_[np.arange(5), -np.ones(15, int)]})
    assert fig_scores(pool) is None
    pool["prob"] = np.linspace(0, 1, 20)
    assert isinstance(fig_scores(pool), bytes)


def test_report_shows_only_the_pick_sheets_of_its_own_budgets(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    figs = run / "eval" / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    for b in ("0.100", "0.500"):  # 0.5: a sheet left by another run sharing this --work folder
        (figs / f"picks_b{b}.png").write_bytes(png)
    md = Path(write_report(run)["markdown"]).read_text()
    assert "figures/picks_b0.100.png" in md and "picks_b0.500" not in md


def test_the_report_says_whether_each_seed_trains_on_its_own_distillation() -> None:
    from edgedistal.pipeline.report import _subsets_vary

    assert _subsets_vary({"m": "runs/d"}) == "distilled subsets fixed"
    assert _subsets_vary({"m": "runs/d_{seed}"}) == "each seed trains on its own distillation of every method"
    assert _subsets_vary({"m": "runs/d_{seed}", "k": "runs/k"}) == (
        "each seed trains on its own distillation of m, the other subsets fixed")
