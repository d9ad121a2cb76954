"""Hostile input (issue #21): never lose a user's data, never run a stranger's code.

Each test builds the hostile input on generated data and asserts that every input file's bytes
are unchanged afterwards (and, for the CLI, a one-line ``error:`` + ``fix:`` with exit 2).

* data loss: ``materialise`` with the dataset inside ``--out``, ``..`` rows, a ``subset/``
  symlinked out of ``--out``; ``predict -o`` over a foreign file (and its ``.frames.csv``);
  ``distill --overwrite`` clears the old ``subset/`` but nothing it did not write;
* code execution: a malicious pickle for every ``torch.load`` (checkpoint, training state,
  ``--weights``) never runs, and the CLI says one line.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_run import run_captured as run

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.pipeline.distill import materialise


def assert_one_line_error(code: int, err: str, *needles: object) -> str:
    """Exit 2, one ``error: …`` line naming ``needles`` and its ``  fix: …``; no traceback
    (info lines such as the backend picked may precede it)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1 and lines[errors[0] + 1].startswith("  fix: ") and errors[0] + 2 == len(lines), err
    for n in needles:
        assert str(n) in lines[errors[0]], (n, err)
    return lines[errors[0]]


def snapshot(*folders: Path) -> dict[str, str]:
    """sha1 of every regular file (symlinks not followed) under ``folders``."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _images(folder: Path, n: int = 4) -> list[Path]:
    paths = []
    for i in range(n):
        cls = "real" if i % 2 == 0 else "fake"
        p = folder / cls / f"img{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"image {i}".encode() * 10)
        paths.append(p)
    return paths


def _manifest(paths: list) -> Manifest:
    return Manifest(pd.DataFrame({"path": [str(p) for p in paths], "label": [i % 2 for i in range(len(paths))]}))


# -- data loss ----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["symlink", "copy", "hardlink"])
def test_materialise_refuses_when_out_holds_the_dataset(tmp_path: Path, how: str) -> None:
    """Images in proj/subset/…, -o proj: every destination is an original → refused, untouched."""
    proj = tmp_path / "proj"
    paths = _images(proj / "subset")
    before = snapshot(tmp_path)
    with pytest.raises(EdgedistalError, match="is one of the input files"):
        materialise(_manifest(paths), proj, how, [str(p) for p in paths])
    assert snapshot(tmp_path) == before
    assert not any(p.is_symlink() for p in paths)


def test_materialise_refuses_a_destination_that_is_another_pool_file(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    pool = _images(proj / "subset")
    picked = [pool[0]]  # common root proj/subset/real → dst proj/subset/img0.png: not an input...
    other = proj / "subset" / "img0.png"
    other.write_bytes(b"user file that is in the pool")
    before = snapshot(tmp_path)
    with pytest.raises(EdgedistalError, match="input files"):
        materialise(_manifest(picked), proj, "copy", [*map(str, pool), str(other)])
    assert snapshot(tmp_path) == before


def test_csv_rows_climbing_out_are_normalised_and_never_escape(tmp_path: Path) -> None:
    """A csv row ``../../canary.jpg`` is stored as the file it names; materialise writes only under --out."""
    from edgedistal.data.layouts import read_layout

    canary = tmp_path / "canary.png"
    canary.write_bytes(b"canary")
    ds = tmp_path / "a" / "b"
    paths = _images(ds, 3)
    rows = [*(p.relative_to(ds).as_posix() for p in paths), "../../canary.png", ""]
    (ds / "labels.csv").write_text("path,label\n" + "".join(f"{r},{i % 2}\n" for i, r in enumerate(rows)))
    res = read_layout(ds / "labels.csv", "csv")
    stored = res.manifest.paths
    assert str(canary) in stored and not any(".." in p for p in stored)
    assert any("empty path" in p.reason for p in res.problems)  # not the csv's own folder
    out = tmp_path / "a" / "out"
    before = snapshot(tmp_path)
    sub = materialise(res.manifest, out, "copy", stored)
    assert snapshot(tmp_path) == {**before, **{k: v for k, v in snapshot(out).items()}}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and str(p) not in before]
    assert written and all(out in p.parents for p in written)
    assert sub is not None and all(str(out) in p for p in Manifest.load(sub / "manifest.parquet").paths)


def test_manifest_load_normalises_climbing_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("path,label\nx/../../evil.png,1\n/abs//y/./z.png,0\n")
    paths = Manifest.load(tmp_path / "m.csv").paths
    assert paths == [str(tmp_path.parent / "evil.png"), "/abs/y/z.png"]


def test_materialise_refuses_a_subset_folder_symlinked_out(tmp_path: Path) -> None:
    paths = _images(tmp_path / "ds")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "subset").symlink_to(elsewhere)
    before = snapshot(tmp_path)
    with pytest.raises(EdgedistalError, match="outside --out"):
        materialise(_manifest(paths), out, "copy", [])
    assert snapshot(tmp_path) == before and not any(elsewhere.iterdir())


def test_overwrite_clears_only_the_old_subset_it_wrote(tmp_path: Path) -> None:
    from edgedistal.commands.distill import refuse_finished

    paths = _images(tmp_path / "ds")
    out = tmp_path / "out"
    materialise(_manifest(paths), out, "symlink", [])
    keep = out / "subset" / "notes.txt"
    keep.write_text("the user's")
    (out / "config.json").write_text("{}")
    before = snapshot(tmp_path / "ds")
    refuse_finished(out, resume=False, overwrite=True)
    assert sorted(p for p in (out / "subset").rglob("*") if not p.is_dir()) == [keep]
    assert snapshot(tmp_path / "ds") == before


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four 32-px face crops and a tiny checkpoint (predict with --detector none)."""
    import cv2

    from edgedistal.models.registry import DetectorConfig, build_detector, save_checkpoint

    root = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    (root / "in").mkdir()
    for i in range(4):
        cv2.imwrite(str(root / "in" / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    save_checkpoint(root / "det.pt", build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    return {"root": root, "in": root / "in", "ckpt": root / "det.pt"}


def _predict(crops: dict[str, Path], *extra: object) -> list:
    return ["predict", crops["in"], "--checkpoint", crops["ckpt"], "--detector", "none", "--device", "cpu",
            "--threads", "1", *extra]


def test_predict_never_replaces_a_foreign_file(crops, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "results.csv"
    mine.write_text("my,spreadsheet\n1,2\n")
    code, _, err = run(_predict(crops, "-o", mine), capsys)
    assert_one_line_error(code, err, mine, "not an edgedistal output")
    assert mine.read_text() == "my,spreadsheet\n1,2\n"
    # the sibling the user never named
    out = tmp_path / "r.csv"
    sibling = tmp_path / "r.frames.csv"
    sibling.write_text("precious")
    code, _, err = run(_predict(crops, "-o", out), capsys)
    assert_one_line_error(code, err, sibling)
    assert sibling.read_text() == "precious" and not out.exists()
    # --overwrite replaces; a re-run then replaces its own outputs without it
    code, _, err = run(_predict(crops, "-o", out, "--overwrite"), capsys)
    assert code == 0, err
    code, _, err = run(_predict(crops, "-o", out), capsys)
    assert code == 0, err
    assert sibling.read_text().startswith("file,frame")


@pytest.mark.parametrize("bad", [("--threshold", "nan"), ("--threshold", "2"), ("--threshold", "-1"),
                                 ("--frames", "0")])
def test_predict_refuses_meaningless_settings_before_loading(crops, tmp_path: Path, capsys, bad) -> None:
    code, _, err = run(_predict(crops, *bad, "--checkpoint", tmp_path / "absent.pt"), capsys)
    assert_one_line_error(code, err, bad[0])  # named before the (missing) model is even looked at


def test_predict_exits_2_when_no_file_got_a_verdict(crops, tmp_path: Path, capsys) -> None:
    blank = tmp_path / "blank"
    blank.mkdir()
    import cv2

    cv2.imwrite(str(blank / "grey.png"), np.full((64, 64, 3), 128, np.uint8))  # no face in it
    code, _, err = run(["predict", blank, "--checkpoint", crops["ckpt"], "--device", "cpu", "--threads", "1"], capsys)
    assert_one_line_error(code, err, "no file got a verdict")


# -- code execution -----------------------------------------------------------------------------
class _Payload:
    """Unpickling this writes a marker file: proof that a loader ran a stranger's code."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _malicious(path: Path, marker: Path, wrap: bool = True) -> Path:
    import torch

    evil = _Payload()
    evil.marker = marker
    payload = {"config": evil, "state_dict": {}, "total": 1, "n": 1} if wrap else evil
    torch.save(payload, path, pickle_protocol=2)
    return path


def test_a_malicious_checkpoint_never_runs(tmp_path: Path) -> None:
    from edgedistal.models.registry import load_checkpoint

    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "detector.pt", marker)
    with pytest.raises(EdgedistalError, match="not loaded") as err:
        load_checkpoint(bad)
    assert "convert-checkpoint" in str(err.value.hint) and not marker.exists()


def test_a_malicious_training_state_never_runs(tmp_path: Path) -> None:
    from edgedistal.models.train import _load_training_state

    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "train_state.pt", marker)
    with pytest.raises(EdgedistalError):
        _load_training_state(bad, None, None, None, None, 1, 1, False)  # type: ignore[arg-type]
    assert not marker.exists()


def test_malicious_weights_never_run(tmp_path: Path) -> None:
    from edgedistal.models.registry import DetectorConfig, build_detector

    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "weights.pth", marker, wrap=False)
    with pytest.raises(EdgedistalError):
        build_detector(DetectorConfig(backbone="resnet10t", image_size=32), weights=bad)
    assert not marker.exists()


@pytest.mark.parametrize("cmd", ["export", "predict", "score", "evaluate", "bench"])
def test_cli_refuses_a_malicious_checkpoint_in_one_line(crops, tmp_path: Path, capsys, cmd: str) -> None:
    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "detector.pt", marker)
    m = tmp_path / "m.parquet"
    _manifest(sorted(crops["in"].glob("*.png"))).save(m)
    argv = {
        "export": ["export", "--checkpoint", bad, "--out", tmp_path / "x", "--precisions", "fp32"],
        "predict": ["predict", crops["in"], "--checkpoint", bad, "--detector", "none", "--device", "cpu"],
        "score": ["score", "--manifest", m, "--checkpoint", bad, "--out", tmp_path / "s", "--device", "cpu"],
        "evaluate": ["evaluate", "-c", bad, "-m", m, "-o", tmp_path / "ev", "--device", "cpu"],
        "bench": ["bench", "--checkpoint", bad, "--manifest", m, "--out", tmp_path / "b", "--backends", "torch"],
    }[cmd]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, bad)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "numpy", "junk"])
def test_cli_weights_with_a_bad_file_is_one_line(crops, tmp_path: Path, capsys, kind: str) -> None:
    import torch

    m = tmp_path / "m.parquet"
    _manifest(sorted(crops["in"].glob("*.png"))).df.assign(split="train").pipe(Manifest).save(m)
    bad = tmp_path / "w.pth"
    if kind == "pickle":
        bad.write_bytes(pickle.dumps({"x": 1}))
    elif kind == "numpy":
        torch.save({"x": np.float64(1)}, bad)
    else:
        bad.write_bytes(b"\x00junk" * 10)
    code, _, err = run(["train", "-m", m, "--out", tmp_path / "t", "--weights", bad, "--backbone", "resnet10t",
                        "--device", "cpu"], capsys)
    assert_one_line_error(code, err, bad)
    assert "weights_only" not in err


def test_convert_checkpoint_needs_trust_and_then_loads_safely(tmp_path: Path, capsys) -> None:
    """An old-style checkpoint (numpy scalars in its extras) is refused, naming the conversion;
    converted with --trust it loads with weights_only=True."""
    import torch

    from edgedistal.models.registry import DetectorConfig, build_detector, load_checkpoint

    det = build_detector(DetectorConfig(backbone="resnet10t", image_size=32))
    from dataclasses import asdict

    old = tmp_path / "old.pt"
    torch.save({"config": asdict(det.config), "state_dict": det.state_dict(), "best": np.float64(0.9)}, old)
    with pytest.raises(EdgedistalError) as refused:
        load_checkpoint(old)
    assert "convert-checkpoint" in str(refused.value.hint)
    new = tmp_path / "new.pt"
    code, _, err = run(["convert-checkpoint", old, "-o", new], capsys)
    assert_one_line_error(code, err, old)
    assert not new.exists()
    code, out, err = run(["convert-checkpoint", old, "-o", new, "--trust"], capsys)
    assert code == 0, err
    _, payload = load_checkpoint(new)
    assert payload["best"] == 0.9 and type(payload["best"]) is float


@pytest.mark.parametrize("damage", ["truncate", "text", "list", "no_state"])
def test_damaged_checkpoints_and_states_are_one_line(tmp_path: Path, damage: str) -> None:
    import torch

    from edgedistal.models.registry import (
        DetectorConfig,
        build_detector,
        load_checkpoint,
        save_checkpoint,
    )
    from edgedistal.models.train import _load_training_state

    p = tmp_path / "x.pt"
    save_checkpoint(p, build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif damage == "text":
        p.write_text("hello")
    elif damage == "list":
        torch.save([1, 2], p)
    else:
        torch.save({"config": {"backbone": "resnet10t"}}, p)
    with pytest.raises(EdgedistalError):
        load_checkpoint(p)
    with pytest.raises(EdgedistalError):
        _load_training_state(p, None, None, None, None, 1, 1, False)  # type: ignore[arg-type]
