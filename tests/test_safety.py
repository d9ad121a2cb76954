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

from edgedistal.data.distilled import materialise
from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError


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
    from edgedistal.models.train import load_training_state

    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "train_state.pt", marker)
    with pytest.raises(EdgedistalError):
        load_training_state(bad, None, None, None, None, 1, 1, False)  # type: ignore[arg-type]
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


def test_convert_checkpoint_with_trust_still_runs_nothing(tmp_path: Path, capsys) -> None:
    """Even vouched for, a checkpoint that needs a global outside the numpy allow-list is
    refused and its code never runs."""
    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "old.pt", marker)
    code, _, err = run(["convert-checkpoint", bad, "-o", tmp_path / "new.pt", "--trust"], capsys)
    assert_one_line_error(code, err, bad)
    assert "never writes" in err and not marker.exists() and not (tmp_path / "new.pt").exists()


@pytest.mark.parametrize("damage", ["truncate", "text", "list", "no_state"])
def test_damaged_checkpoints_and_states_are_one_line(tmp_path: Path, damage: str) -> None:
    import torch

    from edgedistal.models.registry import (
        DetectorConfig,
        build_detector,
        load_checkpoint,
        save_checkpoint,
    )
    from edgedistal.models.train import load_training_state

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
    with pytest.raises(EdgedistalError) as err:
        load_checkpoint(p)
    if damage == "text":  # not "holds Python objects … convert it": converting would not help
        assert "not a PyTorch file" in str(err.value) and "convert" not in str(err.value.hint)
    with pytest.raises(EdgedistalError):
        load_training_state(p, None, None, None, None, 1, 1, False)  # type: ignore[arg-type]


# -- silent wrong results -----------------------------------------------------------------------
def test_train_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    from edgedistal.models.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 32, 32, 3), dtype=np.uint8)
    y = np.r_[np.zeros(16), np.ones(16)].astype(np.int64)
    tiny = dict(backbone="resnet10t", image_size=32, batch_size=8, max_steps=2, eval_every=1, num_threads=1,
                device="cpu", patience=0)
    state = tmp_path / "train_state.pt"
    v = [0, 1, 30, 31]
    data = (x[4:28], y[4:28], x[v], y[v])

    class Stop(Exception):
        pass

    import edgedistal.models.train as T

    real = T.save_training_state

    def save_then_crash(*a, **k):
        real(*a, **k)
        raise Stop

    T.save_training_state = save_then_crash
    try:
        with pytest.raises(Stop):
            fit(*data, TrainConfig(**tiny), progress=False, resume=state)
    finally:
        T.save_training_state = real
    assert state.exists()
    with pytest.raises(EdgedistalError, match="other settings.*lr"):
        fit(*data, TrainConfig(**tiny, lr=0.1), progress=False, resume=state)
    res = fit(*data, TrainConfig(**tiny), progress=False, resume=state)
    assert res.steps == 2  # the same settings resume


def test_evaluate_digest_sees_an_image_replaced_in_place(tmp_path: Path) -> None:
    import os

    from edgedistal.pipeline.evaluate import manifest_digest

    paths = _images(tmp_path / "ds")
    df = _manifest(paths).df
    rows = np.arange(len(df))
    before = manifest_digest(df, rows)
    assert manifest_digest(df, rows) == before
    paths[0].write_bytes(b"other content, other size")
    os.utime(paths[0], ns=(1, 1))
    assert manifest_digest(df, rows) != before


def test_bench_rows_refuse_unknown_or_missing_splits_and_negative_limits(tmp_path: Path) -> None:
    from edgedistal.bench.run import select_rows

    m = _manifest(_images(tmp_path / "ds")).df.assign(split=["train", "train", "test", "test"]).pipe(Manifest)
    with pytest.raises(EdgedistalError, match="unknown split"):
        select_rows(m, "nosuch", None)
    with pytest.raises(EdgedistalError, match="no 'val' rows"):
        select_rows(m, "val", None)
    with pytest.raises(EdgedistalError, match="--limit"):
        select_rows(m, "test", -3)
    assert len(select_rows(m, "test", None)) == 2


@pytest.mark.parametrize("argv", [
    ["bench", "--manifest", "m.parquet", "--iters", "0"],
    ["bench", "--manifest", "m.parquet", "--limit", "-3"],
    ["engines", "--export-dir", "x", "--calib-size", "0"],
    ["export", "--checkpoint", "c.pt", "--opset", "5"],
])
def test_nonsense_numbers_are_refused_before_work(tmp_path: Path, capsys, argv: list) -> None:
    code, _, err = run([*argv, "-o", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, argv[-2])


def test_milestones_above_budget_and_unknown_params_are_refused() -> None:
    from edgedistal.acquire.registry import get_strategy
    from edgedistal.pipeline.distill_config import milestone_counts

    with pytest.raises(EdgedistalError, match="0.5 exceed the budget"):
        milestone_counts((0.1, 0.5), 100, 30)
    assert milestone_counts((0.1, 0.3), 100, 30) == {0.1: 10, 0.3: 30}
    with pytest.raises(EdgedistalError) as err:
        get_strategy("hybrid", notakey=5)
    assert "notakey" in str(err.value) and "beta" in str(err.value.hint)


@pytest.mark.parametrize("bad", [2.0, float("nan"), -0.5, float("inf")])
def test_backends_refuse_outputs_that_are_not_probabilities(bad: float) -> None:
    from edgedistal.runtime.base import check_probs

    check_probs(np.array([0.0, 0.5, 1.0], np.float32), "ok")
    with pytest.raises(EdgedistalError, match="not a probability"):
        check_probs(np.array([0.2, bad], np.float32), "model.onnx")


def test_a_foreign_onnx_with_float_input_is_one_line(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edgedistal.runtime.ort_backend import OrtBackend

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["prob"])], "g", [inp], [out])
    path = tmp_path / "model_fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(EdgedistalError, match="not an edgedistal model"):
        OrtBackend(path, device="cpu")


@pytest.mark.parametrize("doc", ["{not json", "[1, 2]", '{"models": [1]}', '{"models": {"fp32": 3}}',
                                 '{"config": {"image_size": "big"}}', '{"identity": "x"}', "[" * 5000 + "]" * 5000,
                                 '{"a":' * 100 + "1" + "}" * 100])
def test_damaged_export_sidecars_are_one_line(tmp_path: Path, doc: str) -> None:
    from edgedistal.runtime.artifacts import resolve

    (tmp_path / "model_fp32.onnx").write_bytes(b"x")
    (tmp_path / "export.json").write_text(doc)
    with pytest.raises(EdgedistalError, match="export sidecar"):
        resolve("fp32", tmp_path)
    (tmp_path / "eng").mkdir()
    (tmp_path / "eng" / "model_fp32.onnx").write_bytes(b"x")
    (tmp_path / "eng" / "model_fp32.json").write_text(doc)
    if not doc.startswith("{") or doc.startswith('{"a"') or doc == "{not json":
        with pytest.raises(EdgedistalError, match="engine sidecar"):
            resolve("fp32", None, tmp_path / "eng")


# -- tracebacks → one line ----------------------------------------------------------------------
def _png_header(path: Path, w: int, h: int) -> Path:
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_absurd_and_tiny_images_are_problem_rows(tmp_path: Path) -> None:
    import cv2

    from edgedistal.data.images import image_problem, read_rgb
    from edgedistal.data.layouts import read_layout

    ds = tmp_path / "ds"
    _images(ds, 2)
    for cls in ("real", "fake"):
        cv2.imwrite(str(ds / cls / "ok.png"), np.full((16, 16, 3), 100, np.uint8))
    huge = _png_header(ds / "real" / "huge.png", 50000, 50000)
    one = ds / "fake" / "one.png"
    cv2.imwrite(str(one), np.zeros((1, 1, 3), np.uint8))
    (ds / "real" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (ds / "fake" / "loop.png").symlink_to(ds / "fake" / "loop.png")
    assert "too large" in image_problem(str(huge))[1] and "too small" in image_problem(str(one))[1]
    with pytest.raises(EdgedistalError, match="huge.png"):
        read_rgb(str(huge), 32)
    res = read_layout(ds, verify=True)
    bad = {Path(p.path).name for p in res.problems}
    assert {"huge.png", "one.png", "dangling.png", "loop.png"} <= bad
    assert sorted(Path(p).name for p in res.manifest.paths) == ["ok.png", "ok.png"]


def test_predict_reports_absurd_images_per_file(crops, tmp_path: Path, capsys) -> None:
    import shutil

    folder = tmp_path / "in"
    shutil.copytree(crops["in"], folder)
    _png_header(folder / "huge.png", 50000, 50000)
    code, out, err = run(["predict", folder, "--checkpoint", crops["ckpt"], "--detector", "none", "--device", "cpu",
                          "-o", tmp_path / "r.csv"], capsys)
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "r.csv")
    assert rows.loc[rows["file"].str.endswith("huge.png"), "verdict"].tolist() == ["error"]
    assert (rows["verdict"] != "error").sum() == 4


def test_train_with_an_unknown_backbone_writes_nothing(crops, tmp_path: Path, capsys) -> None:
    m = tmp_path / "m.parquet"
    _manifest(sorted(crops["in"].glob("*.png"))).df.assign(split="train").pipe(Manifest).save(m)
    code, _, err = run(["train", "-m", m, "--out", tmp_path / "t", "--backbone", "notanet", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "notanet")
    assert not (tmp_path / "t" / "split.parquet").exists()


def test_extract_honours_layout_csv(tmp_path: Path) -> None:
    from edgedistal.extract.run import load_input

    ds = tmp_path / "ds"
    paths = _images(ds, 2)
    (ds / "list.csv").write_text("path,label\n" + "".join(f"{p.relative_to(ds)},{'REAL' if i % 2 == 0 else 'FAKE'}\n"
                                                          for i, p in enumerate(paths)))
    m, problems = load_input(ds / "list.csv", "csv")
    assert sorted(m.paths) == sorted(map(str, paths)) and problems == []


def test_saved_checkpoints_and_states_load_with_weights_only(tmp_path: Path) -> None:
    """Whatever extras a writer passes (numpy scalars, arrays, paths) are stored as plain types."""
    from edgedistal.models.registry import (
        DetectorConfig,
        build_detector,
        load_checkpoint,
        save_checkpoint,
    )

    p = save_checkpoint(tmp_path / "d.pt", build_detector(DetectorConfig(backbone="resnet10t", image_size=32)),
                        auc=np.float64(0.9), n=np.int64(3), where=tmp_path, arr=np.zeros(2, np.float32))
    _, payload = load_checkpoint(p)
    assert payload["auc"] == 0.9 and payload["n"] == 3 and payload["where"] == str(tmp_path)
