"""`edgedistal train` and `edgedistal evaluate --checkpoint` end to end on generated data."""

from __future__ import annotations

import json

import pytest
from cli_run import run_captured as run

from edgedistal.data.layouts import read_layout
from edgedistal.data.manifest import Manifest
from edgedistal.data.split import check_no_group_leak
from edgedistal.models.metrics import chance_warning
from edgedistal.models.registry import load_checkpoint


@pytest.fixture(scope="module")
def manifest_path(synth_dir, tmp_path_factory):
    """The synth dataset as an unsplit manifest: train must split it by group itself."""
    path = tmp_path_factory.mktemp("m") / "manifest.parquet"
    read_layout(synth_dir, "csv").manifest.save(path)
    return path


TINY = ["--backbone", "resnet10t", "--image-size", "32", "--steps", "4", "--batch-size", "16",
        "--eval-every", "2", "--threads", "1", "--device", "cpu"]


def test_train_then_evaluate_checkpoint(manifest_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY], capsys)
    assert code == 0, stderr
    assert "trained 4 steps" in stdout and "test split" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    # 4 steps: the at-chance warning, when the test AUC is within noise of 0.5, is in both places
    expected = [w for n in ("val", "test") for w in [chance_warning(metrics[n], f"on {n}, the detector")] if w]
    assert metrics.get("warnings", []) == expected
    for line in expected:
        assert f"warning: {line[:50]}" in stderr
    assert metrics["train"]["steps"] == 4 and len(metrics["history"]) == 2
    assert not (out / "train_state.pt").exists()  # removed once the run finished
    assert {"frame", "video"} <= set(metrics["test"])
    split = Manifest.load(out / "split.parquet")
    check_no_group_leak(split)
    assert set(split.df["split"]) == {"train", "val", "test"}
    model, payload = load_checkpoint(out / "detector.pt")
    assert model.config.backbone == "resnet10t" and payload["train_config"]["max_steps"] == 4
    assert payload["metrics"]["test"]["frame"]["auc"] == metrics["test"]["frame"]["auc"]

    ev = tmp_path / "eval.json"
    code, stdout, stderr = run(["evaluate", "--checkpoint", str(out / "detector.pt"), "--manifest",
                                str(manifest_path), "--out", str(ev), "--device", "cpu"], capsys)
    assert code == 0, stderr
    assert "video" in stdout
    got = json.loads(ev.read_text())
    # same checkpoint, same (re-derived) split → the numbers train reported
    assert got["frame"]["n"] == metrics["test"]["frame"]["n"]
    assert got["frame"]["auc"] == pytest.approx(metrics["test"]["frame"]["auc"], abs=1e-6)
    assert got["video"]["auc"] == pytest.approx(metrics["test"]["video"]["auc"], abs=1e-6)


def test_cli_errors_are_clear(manifest_path, tmp_path, capsys):
    code, _, err = run(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--manifest",
                        str(manifest_path)], capsys)
    assert code == 2 and "checkpoint not found" in err and "fix:" in err
    code, _, err = run(["evaluate", "--checkpoint", str(tmp_path / "nope.pt")], capsys)
    assert code == 2 and "--manifest" in err
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(tmp_path / "r"),
                        "--backbone", "no_such_net", "--steps", "1"], capsys)
    assert code == 2 and "unknown backbone" in err


def test_train_on_a_distilled_subset(manifest_path, tmp_path, capsys):
    """--distilled trains on the subset only; val and test stay the whole held-out split."""
    from edgedistal.data.split import ensure_split

    split = ensure_split(Manifest.load(manifest_path))
    train = split.split("train").df
    picked = train.groupby("label").head(6)  # both classes, a fraction of the pool
    folder = tmp_path / "d"
    folder.mkdir()
    Manifest(picked).save(folder / "distilled.parquet")
    out = tmp_path / "run"
    code, stdout, stderr = run(["train", "-m", str(manifest_path), "--distilled", str(folder),
                                "-o", str(out), *TINY], capsys)
    assert code == 0, stderr
    assert f"training on the distilled subset: {len(picked)} rows" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"] == {"train": len(picked), "val": int((split.df["split"] == "val").sum()),
                                 "test": int((split.df["split"] == "test").sum())}

    foreign = split.split("test").df.head(3)  # rows outside the train split: refused
    Manifest(foreign).save(folder / "distilled.parquet")
    code, _, err = run(["train", "-m", str(manifest_path), "--distilled", str(folder),
                        "-o", str(tmp_path / "run2"), *TINY], capsys)
    assert code == 2 and "not in the manifest's train split" in err and "fix:" in err
    assert not (tmp_path / "run2").exists()


def test_train_refuses_to_clobber_a_finished_run(manifest_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY], capsys)
    assert code == 0, err
    before = (out / "detector.pt").read_bytes()
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY], capsys)
    assert code == 2 and "holds a finished run (detector.pt)" in err and "--overwrite" in err
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY, "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err
    assert (out / "detector.pt").read_bytes() == before  # untouched by the refused runs
    (out / "train_state.pt").write_bytes(b"")  # a started run: restarting it needs a word too
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY], capsys)
    assert code == 2 and "interrupted run" in err and "--resume" in err
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(out), *TINY, "--overwrite"], capsys)
    assert code == 0, err
    assert not (out / "train_state.pt").exists()


def test_ctrl_c_says_how_to_resume(manifest_path, tmp_path, capsys, monkeypatch):
    import edgedistal.models.train as train_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train_on_manifest", interrupted)
    code, _, err = run(["train", "-m", str(manifest_path), "--out", str(tmp_path / "r"), *TINY], capsys)
    assert code == 130
    assert "interrupted; to continue: re-run the same command with --resume" in err
