"""`edgedistal ingest` through the real entry point (exit codes, files written, messages)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from cli_run import run_captured as run

from edgedistal.data.manifest import Manifest
from edgedistal.data.split import check_no_group_leak


def test_ingest_csv_writes_manifest_csv_and_group_split(synth_dir, tmp_path, capsys):
    out = tmp_path / "m" / "manifest.parquet"
    code, stdout, _ = run(
        [
            "ingest",
            str(synth_dir),
            "--out",
            str(out),
            "--csv",
            "--split",
            "0.6,0.2,0.2",
            "--split-seed",
            "1",
        ],
        capsys,
    )
    assert code == 0
    assert "layout: csv (auto-detected)" in stdout and "problems: 0" in stdout
    m = Manifest.load(out)
    assert len(m) == len(pd.read_csv(synth_dir / "metadata.csv"))
    assert set(m.df["split"]) == {"train", "val", "test"}
    check_no_group_leak(m)
    assert len(Manifest.load(out.with_suffix(".csv"))) == len(m)
    assert not (tmp_path / "m" / "manifest.problems.csv").exists()
    assert f"{len(m)} samples" in stdout.replace(",", "")


def test_ingest_keeps_dataset_split_unless_asked(tmp_path, capsys):
    for split in ("train", "test"):
        for cls in ("real", "fake"):
            p = tmp_path / "data" / split / cls / f"{split}{cls}_001.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    out = tmp_path / "m.parquet"
    assert run(["ingest", str(tmp_path / "data"), "--out", str(out)], capsys)[0] == 0
    assert sorted(Manifest.load(out).df["split"]) == ["test", "test", "train", "train"]


def test_ingest_problems_file_and_strict_exit_code(tmp_path, capsys):
    data = tmp_path / "data"
    for rel, payload in (
        ("real/a_001.png", b"x"),
        ("fake/b_001.png", b"x"),
        ("fake/c_001.png", b""),
    ):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(payload)
    out = tmp_path / "m.parquet"
    code, stdout, _ = run(["ingest", str(data), "--layout", "folder", "--out", str(out)], capsys)
    assert code == 0 and "1 problem(s) skipped" in stdout
    problems = pd.read_csv(tmp_path / "m.problems.csv")
    assert [Path(p).name for p in problems["path"]] == ["c_001.png"]
    assert len(Manifest.load(out)) == 2

    out2 = tmp_path / "strict.parquet"
    code, _, stderr = run(["ingest", str(data), "--strict", "--out", str(out2)], capsys)
    assert code == 2 and "c_001.png" in stderr and "Traceback" not in stderr
    assert not out2.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layout", "nope"], "unknown layout 'nope'"),
        (["--split", "0.5,0.5"], "three fractions"),
    ],
)
def test_ingest_bad_options_exit_2_without_traceback(synth_dir, tmp_path, capsys, args, message):
    code, stdout, stderr = run(
        ["ingest", str(synth_dir), "--out", str(tmp_path / "m.parquet"), *args], capsys
    )
    assert code == 2
    assert message in stderr and "Traceback" not in stderr + stdout
    assert not (tmp_path / "m.parquet").exists()


def test_ingest_missing_src(tmp_path, capsys):
    code, _, stderr = run(["ingest", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "nowhere: dataset not found" in stderr and "fix:" in stderr


def test_ingest_real_dfdc_sample_reports_missing(shared_data, tmp_path, capsys):
    src = shared_data("dfdc-sample-videos")
    out = tmp_path / "dfdc.parquet"
    code, stdout, _ = run(["ingest", str(src), "--out", str(out)], capsys)
    assert code == 0 and "layout: dfdc" in stdout and "3 problem(s) skipped" in stdout
    assert len(pd.read_csv(tmp_path / "dfdc.problems.csv")) == 3
    assert set(Manifest.load(out).df["media"]) == {"video"}
