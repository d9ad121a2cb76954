"""The demo is the first thing a new user runs: it must work end to end and resume."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgedistal.cli import cli
from edgedistal.data.manifest import Manifest


def test_quick_demo_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "demo.json").read_text())
    pool = Manifest.load(out / "manifest.parquet").df
    distilled = Manifest.load(out / "distilled" / "distilled.parquet").df
    # the distilled set comes from the train pool only, at the configured budget
    assert set(distilled["split"]) == {"train"}
    assert len(distilled) == summary["distilled_rows"] < summary["pool_rows"] == (pool["split"] == "train").sum()
    assert (out / "eval" / "report.html").stat().st_size > 10_000  # figures are embedded
    assert (out / "export" / "model_fp32.onnx").exists() and (out / "export" / "model_int8.onnx").exists()
    assert "report:" in res.output
    # the embedder: pretrained label-free, selected in, exported beside the detector
    assert (out / "embedder" / "embedder.pt").exists() and (out / "embedder" / "report.md").exists()
    assert len(Manifest.load(out / "distilled_embedder" / "distilled.parquet")) == summary["distilled_rows"]
    assert (out / "export" / "embedder_fp32.onnx").exists()
    emb_before = (out / "embedder" / "embedder.pt").stat().st_mtime_ns

    # a second run resumes: every stage's outputs are reused, nothing is retrained
    before = (out / "detector.pt").stat().st_mtime_ns
    res2 = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert res2.exit_code == 0, res2.output
    assert (out / "detector.pt").stat().st_mtime_ns == before
    assert (out / "embedder" / "embedder.pt").stat().st_mtime_ns == emb_before
    assert json.loads((out / "demo.json").read_text())["distilled_rows"] == summary["distilled_rows"]


def test_the_demo_evaluation_is_cut_only_where_the_cpu_trains_in_fp32(monkeypatch):
    """On an AVX2-only CPU the full demo ran 313–317 s (limit 4 min): auto leaves out the embedder
    arm and one full-pool run there, and nowhere else."""
    import edgedistal.utils.machine as machine
    from edgedistal.pipeline.demo import DemoConfig, sized_for_machine

    cpu = DemoConfig(device="cpu")
    monkeypatch.setattr(machine, "cpu_has_fast_bf16", lambda: True)
    assert sized_for_machine(cpu) == (cpu, None)
    monkeypatch.setattr(machine, "cpu_has_fast_bf16", lambda: False)
    lite, why = sized_for_machine(cpu)
    assert not lite.evaluate_embedder and lite.full_seeds == 1 and "fp32" in why and "--eval-size full" in why
    assert sized_for_machine(cpu, "full") == (cpu, None)
    assert sized_for_machine(DemoConfig(device="cpu"), "lite")[0] == lite
