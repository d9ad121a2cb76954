"""Fault injection: what a new user gets wrong, and what the CLI must say (issue #17).

Run alone with ``pytest tests/test_faults.py``. Every CLI case asserts exit code 2, a one-line
``error:`` naming the path (plus one ``fix:`` line), no traceback, and no file left behind.

Cases:

* unwritable ``--out`` (ingest, extract, train, export, score, distill, evaluate, engines, report)
  — refused before any work;
* ``--out`` that is an existing file (the same commands; the file is left untouched), ``ingest
  --out file`` (an unrelated file is never overwritten) and ``ingest --out file/f``;
* disk full: a writer's ENOSPC (parquet) and torch.save's ``unexpected pos`` become "no space
  left on <path>", leaving no temporary; the image cache the same;
* a checkpoint whose config names another architecture, or that lacks its weights or config
  (export, score);
* bad numbers: ``--budget nan|inf|0|-1|x``, ``--batch-size 0``, ``--image-size 0``,
  ``--device tpu``, ``--score foo``, ``--rounds 0|-1``, ``--steps 0|-3``, ``--epochs nan``;
  ``--device cuda`` without CUDA (train, distill, score);
* silent wrong results: ``--budget`` above the pool, a tiny pool, one-class data in train and
  distill, a truncated JPEG under ``ingest --verify``, one path labelled real and fake;
* the output lock: a live holder is named (pid, host, start), a dead one's lock is taken over;
  ``distill`` into a finished folder needs ``--resume`` or ``--overwrite``;
* stale hidden ``.tmp`` files of killed writers are removed from the image cache;
* kill -9 of ``extract --workers 2``: no worker (nor the resource tracker) outlives it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_run import run_captured as run

from edgedistal.data.manifest import Manifest

RO = Path("/sys/edgedistal-faults")  # not writable even by root (sysfs)
TINY_TRAIN = ["--backbone", "resnet10t", "--image-size", "32", "--steps", "2", "--batch-size", "8",
              "--threads", "1", "--device", "cpu"]


def assert_one_line_error(code: int, err: str, *needles: object) -> str:
    """Exit 2, exactly ``error: …`` + ``  fix: …``, no traceback; the error line names ``needles``."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("  fix: "), err
    for n in needles:
        assert str(n) in lines[0], (n, err)
    return lines[0]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- fixtures: tiny generated data ------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 24-image dataset, its manifest, a one-class and a 6-row manifest, a checkpoint."""
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.synth import SynthConfig, write_dataset
    from edgedistal.models.registry import DetectorConfig, build_detector, save_checkpoint

    root = tmp_path_factory.mktemp("faults")
    write_dataset(root / "ds", SynthConfig(n_groups=6, fakes_per_real=1, frames_per_video=2, size=32, seed=1))
    m = read_layout(root / "ds", "csv").manifest
    m.save(root / "m.parquet")
    m.where(m.df["label"] == 1).save(root / "fake_only.parquet")
    m.take(np.r_[0:3, len(m) - 3 : len(m)]).save(root / "six.parquet")
    det = build_detector(DetectorConfig(backbone="resnet10t", image_size=32))
    save_checkpoint(root / "ok.pt", det)
    return {"root": root, "ds": root / "ds", "m": root / "m.parquet", "fake_only": root / "fake_only.parquet",
            "six": root / "six.parquet", "ckpt": root / "ok.pt"}


def _commands(d: dict[str, Path], out: Path) -> dict[str, list]:
    """One cheap invocation per command, writing to ``out`` (a folder, or a file for ingest/evaluate)."""
    return {
        "ingest": ["ingest", d["ds"], "--out", out / "m.parquet" if out == RO else out],
        "extract": ["extract", d["m"], "--out", out, "--detector", "none", "--workers", "0"],
        "train": ["train", "-m", d["m"], "--out", out, *TINY_TRAIN],
        "export": ["export", "--checkpoint", d["ckpt"], "--out", out, "--precisions", "fp32"],
        "score": ["score", "--manifest", d["m"], "--checkpoint", d["ckpt"], "--out", out],
        "distill": ["distill", "--manifest", d["m"], "--out", out, "--device", "cpu"],
        "evaluate": ["evaluate", "-c", d["ckpt"], "-m", d["m"], "-o", out / "ev.json" if out == RO else out],
        "engines": ["engines", "--export-dir", d["root"] / "noexport", "--out", out],
        "report": ["report", d["root"], "--out", out],
        "demo": ["demo", "--quick", "--out", out, "--device", "cpu"],
    }


COMMANDS = ["ingest", "extract", "train", "export", "score", "distill", "evaluate", "engines", "report"]


# -- outputs: unwritable, a file, a file as a parent ------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_out_is_refused_first(command: str, data, capsys) -> None:
    if os.access("/sys", os.W_OK) and not RO.parent.is_dir():
        pytest.skip("no read-only folder to test with")
    code, _, err = run(_commands(data, RO)[command], capsys)
    line = assert_one_line_error(code, err, RO)
    assert "cannot write" in line


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("ingest", "evaluate")])
def test_out_that_is_a_file_is_refused(command: str, data, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    code, _, err = run(_commands(data, afile)[command], capsys)
    assert_one_line_error(code, err, afile, "is a file")
    assert afile.read_text() == "keep me" and files_under(tmp_path) == [afile]


@pytest.mark.parametrize("command", ["ingest", "evaluate"])
def test_unrelated_file_is_not_overwritten(command: str, data, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    code, _, err = run(_commands(data, afile)[command], capsys)
    assert_one_line_error(code, err, afile, "refusing to overwrite")
    assert afile.read_text() == "keep me" and files_under(tmp_path) == [afile]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_below_a_file_is_refused(command: str, data, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "fileout"
    afile.write_text("keep me")
    code, _, err = run(_commands(data, afile / "f")[command], capsys)
    assert_one_line_error(code, err, afile, "not a folder")
    assert afile.read_text() == "keep me" and files_under(tmp_path) == [afile]


def test_ingest_may_replace_its_own_manifest(data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.parquet"
    for _ in range(2):
        code, _, err = run(["ingest", data["ds"], "--out", out], capsys)
        assert code == 0, err


# -- disk full ----------------------------------------------------------------------------------
def test_disk_full_in_ingest_names_the_path(data, tmp_path: Path, capsys, monkeypatch) -> None:
    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    out = tmp_path / "out" / "m.parquet"
    code, _, err = run(["ingest", data["ds"], "--out", out], capsys)
    assert_one_line_error(code, err, f"no space left on {out}")
    assert files_under(tmp_path) == []  # no temporary left


def test_disk_full_in_torch_save_names_the_path(tmp_path: Path, monkeypatch) -> None:
    import torch

    from edgedistal.errors import from_os_error
    from edgedistal.models.registry import DetectorConfig, build_detector, save_checkpoint

    def full(*args, **kw):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 45")

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "detector.pt"
    with pytest.raises(OSError) as info:
        save_checkpoint(path, build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    assert info.value.errno == errno.ENOSPC
    assert str(from_os_error(info.value)) == f"no space left on {path}"
    assert files_under(tmp_path) == []


def test_disk_full_in_image_cache(data, tmp_path: Path, monkeypatch) -> None:
    from edgedistal.data import images

    monkeypatch.setenv("EDGEDISTAL_CACHE", str(tmp_path))

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", full)
    paths = Manifest.load(data["m"]).paths[:4]
    with pytest.raises(OSError) as info:
        images.load_images(paths, 32)
    assert info.value.errno == errno.ENOSPC and str(tmp_path) in info.value.filename
    assert files_under(tmp_path) == []


# -- checkpoints that do not match their config -------------------------------------------------
def _broken_checkpoint(src: Path, dst: Path, how: str) -> Path:
    import torch

    payload = torch.load(src, map_location="cpu", weights_only=False)
    if how == "architecture":
        payload["config"]["backbone"] = "resnet18"
    elif how == "no_weights":
        del payload["state_dict"]
    else:
        del payload["config"]
    torch.save(payload, dst)
    return dst


@pytest.mark.parametrize("how,needle", [("architecture", "do not match"), ("no_weights", "state_dict"),
                                        ("no_config", "config")])
@pytest.mark.parametrize("command", ["export", "score"])
def test_mismatched_checkpoint(command: str, how: str, needle: str, data, tmp_path: Path, capsys) -> None:
    bad = _broken_checkpoint(data["ckpt"], tmp_path / "bad.pt", how)
    out = tmp_path / "out"
    argv = (["export", "--checkpoint", bad, "--out", out, "--precisions", "fp32"] if command == "export" else
            ["score", "--manifest", data["m"], "--checkpoint", bad, "--out", out, "--device", "cpu"])
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, bad, needle)
    assert not out.exists() or files_under(out) == []


# -- bad numbers --------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("distill", "--budget", "nan"), ("distill", "--budget", "inf"), ("distill", "--budget", "0"),
    ("distill", "--budget", "-1"), ("distill", "--budget", "x"), ("distill", "--seed-size", "nan"),
    ("distill", "--batch-size", "0"), ("distill", "--image-size", "0"), ("distill", "--device", "tpu"),
    ("distill", "--score", "foo"), ("distill", "--rounds", "0"), ("distill", "--rounds", "-1"),
    ("distill", "--steps", "0"), ("distill", "--milestones", "0.1,nan"),
    ("train", "--steps", "0"), ("train", "--steps", "-3"), ("train", "--batch-size", "0"),
    ("train", "--image-size", "0"), ("train", "--device", "tpu"), ("train", "--epochs", "nan"),
    ("train", "--lr", "inf"), ("score", "--batch-size", "0"), ("score", "--device", "tpu"),
    ("extract", "--workers", "-1"), ("extract", "--frames", "0"), ("demo", "--threads", "0"),
]


@pytest.mark.parametrize("command,option,value", BAD_OPTIONS)
def test_bad_numbers(command: str, option: str, value: str, data, tmp_path: Path, capsys) -> None:
    argv = [*_commands(data, tmp_path / "out")[command], option, value]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, option)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train", "distill", "score"])
def test_cuda_without_cuda_is_an_error(command: str, data, tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run([*_commands(data, tmp_path / "out")[command], "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "CUDA is not available")
    assert not (tmp_path / "out").exists()


def test_score_backend_never_falls_back_to_cpu(data) -> None:
    import torch

    from edgedistal.errors import EdgedistalError
    from edgedistal.runtime.select import get_backend

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EdgedistalError, match="CUDA is not available"):
        get_backend("auto", checkpoint=data["ckpt"], device="cuda")


# -- silent wrong results -----------------------------------------------------------------------
def test_budget_above_the_pool(data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    code, _, err = run(["distill", "--manifest", data["m"], "--out", out, "--budget", "1000", "--device", "cpu"],
                       capsys)
    assert_one_line_error(code, err, "1000", "larger than the pool")
    assert files_under(tmp_path) == []


def test_tiny_pool_states_the_minimum(data, tmp_path: Path, capsys) -> None:
    from edgedistal.pipeline.distill_config import MIN_POOL

    code, _, err = run(["distill", "--manifest", data["six"], "--out", tmp_path / "d", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, f"at least {MIN_POOL}")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("command", ["train", "distill"])
def test_one_class_dataset(command: str, data, tmp_path: Path, capsys) -> None:
    argv = _commands(data, tmp_path / "out")[command]
    argv[argv.index(data["m"])] = data["fake_only"]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, data["fake_only"], "only fake")
    assert files_under(tmp_path) == []


def test_one_class_ingest_warns(data, tmp_path: Path, capsys) -> None:
    src = tmp_path / "fakes"
    df = pd.read_csv(data["ds"] / "metadata.csv")
    src.mkdir()
    df = df[df["label"].astype(str).str.lower().isin(["fake", "1"])]
    df.assign(path=[str(data["ds"] / p) for p in df["path"]]).to_csv(src / "metadata.csv", index=False)
    code, _, err = run(["ingest", src / "metadata.csv", "--layout", "csv", "--out", tmp_path / "m.parquet"], capsys)
    assert code == 0 and "warning: only fake samples" in err


def _csv_dataset(data, tmp_path: Path, edit) -> Path:
    df = pd.read_csv(data["ds"] / "metadata.csv")
    df["path"] = [str(data["ds"] / p) for p in df["path"]]
    df = edit(df)
    df.to_csv(tmp_path / "metadata.csv", index=False)
    return tmp_path / "metadata.csv"


def test_truncated_jpeg_fails_verify(data, tmp_path: Path, capsys) -> None:
    good = Path(pd.read_csv(data["ds"] / "metadata.csv")["path"].map(lambda p: str(data["ds"] / p)).iloc[0])
    cut = tmp_path / "cut.jpg"
    blob = good.read_bytes()
    cut.write_bytes(blob[: len(blob) // 2])
    csv = _csv_dataset(data, tmp_path, lambda df: pd.concat(
        [df, df.iloc[:1].assign(path=str(cut), video="cutvid", group="cutvid")], ignore_index=True))
    code, _, err = run(["ingest", csv, "--layout", "csv", "--verify", "--strict", "--out", tmp_path / "m.parquet"],
                       capsys)
    assert_one_line_error(code, err, cut, "cannot decode")
    code, _, err = run(["ingest", csv, "--layout", "csv", "--verify", "--out", tmp_path / "m.parquet"], capsys)
    assert code == 0, err
    assert str(cut) not in Manifest.load(tmp_path / "m.parquet").paths
    assert str(cut) in pd.read_csv(tmp_path / "m.problems.csv")["path"].tolist()


def test_conflicting_labels_name_the_path(data, tmp_path: Path, capsys) -> None:
    def conflict(df: pd.DataFrame) -> pd.DataFrame:
        row = df.iloc[:1].copy()
        row["label"] = "FAKE" if str(df["label"].iloc[0]).upper() in ("REAL", "0") else "REAL"
        return pd.concat([df, row], ignore_index=True)

    csv = _csv_dataset(data, tmp_path, conflict)
    first = pd.read_csv(csv)["path"].iloc[0]
    out = tmp_path / "m.parquet"
    code, _, err = run(["ingest", csv, "--layout", "csv", "--out", out], capsys)
    assert_one_line_error(code, err, first, "labelled")
    assert not out.exists()


# -- the output lock and finished runs ----------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_names_its_holder(data, tmp_path: Path, capsys) -> None:
    from edgedistal.utils.lock import LOCK_NAME, _holder_record

    out = tmp_path / "d"
    out.mkdir()
    holder = _holder_record("distill") | {"pid": 1, "proc_start": None}  # pid 1 is alive
    (out / LOCK_NAME).write_text(json.dumps(holder))
    for argv in (["distill", "--manifest", data["m"], "--out", out, "--device", "cpu"],
                 ["train", "-m", data["m"], "--out", out, *TINY_TRAIN]):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, out, "in use by pid 1", holder["host"], holder["started"])
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == 1  # not broken


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    from edgedistal.utils.lock import LOCK_NAME, _holder_record, output_lock

    (tmp_path / LOCK_NAME).write_text(json.dumps(_holder_record("train") | {"pid": _dead_pid()}))
    with output_lock(tmp_path, "distill") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    from edgedistal.errors import EdgedistalError
    from edgedistal.utils.lock import output_lock

    with output_lock(tmp_path / "d", "distill"):
        code = textwrap.dedent(f"""
            from edgedistal.utils.lock import acquire
            acquire({str(tmp_path / "d")!r}, "distill")
        """)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        assert res.returncode != 0 and f"in use by pid {os.getpid()}" in res.stderr
        with pytest.raises(EdgedistalError):  # also within one process
            with output_lock(tmp_path / "d", "train"):
                pass
    assert not (tmp_path / "d").exists()  # created by the lock, left empty: removed


def test_a_failed_run_removes_the_parents_the_lock_created(tmp_path: Path) -> None:
    """`evaluate` with a bad manifest used to leave the default --out's empty `runs/` behind."""
    from edgedistal.utils.lock import output_lock

    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path / "kept" / "runs" / "eval", "evaluate"):
            raise RuntimeError("bad manifest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and not any((tmp_path / "kept").iterdir())
    with output_lock(tmp_path / "kept" / "runs" / "eval", "evaluate") as lock:
        (lock.parent / "cells").mkdir()  # the run wrote something: everything stays
    assert (tmp_path / "kept" / "runs" / "eval" / "cells").is_dir()


def test_distill_into_finished_folder_needs_resume_or_overwrite(data, tmp_path: Path, capsys) -> None:
    from edgedistal.commands.distill import refuse_finished

    out = tmp_path / "d"
    (out / "milestones").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "distilled.parquet").write_text("previous run")
    code, _, err = run(["distill", "--manifest", data["m"], "--out", out, "--device", "cpu"], capsys)
    assert_one_line_error(code, err, out, "finished distillation")
    assert "--overwrite" in err and (out / "distilled.parquet").read_text() == "previous run"
    refuse_finished(out, resume=True, overwrite=False)  # resume: allowed, nothing removed
    assert (out / "config.json").exists()
    refuse_finished(out, resume=False, overwrite=True)
    assert not (out / "config.json").exists() and not (out / "milestones").exists()


# -- debris of killed runs ----------------------------------------------------------------------
def test_stale_cache_temporaries_are_removed(data, tmp_path: Path, monkeypatch) -> None:
    from edgedistal.data.images import load_images
    from edgedistal.utils.io import host_tag

    monkeypatch.setenv("EDGEDISTAL_CACHE", str(tmp_path))
    folder = tmp_path / "images"
    folder.mkdir()
    dead = folder / f".abc.npy.{host_tag()}-{_dead_pid()}.x1y2.tmp"
    live = folder / f".abc.npy.{host_tag()}-{os.getpid()}.x1y2.tmp"
    old = folder / ".old.npy.x1y2.tmp"  # an untagged temporary from an older version
    for p in (dead, live, old):
        p.write_bytes(b"\0" * 1024)
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    load_images(Manifest.load(data["m"]).paths[:4], 32)
    assert not dead.exists() and not old.exists() and live.exists()


KILL_SCRIPT = """
import os, sys, time
from pathlib import Path
from edgedistal.data.manifest import Manifest
from edgedistal.extract.run import ExtractConfig, run_extract

def children():
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out

def hang(record):
    print("CHILDREN", *children(), flush=True)
    time.sleep(600)

if __name__ == "__main__":  # spawned workers re-import this file
    m = Manifest.load(sys.argv[1])
    run_extract(m, sys.argv[2], ExtractConfig(detector="none", size=32, frames=1), workers=2, on_done=hang)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_extract_workers_die_with_their_parent(data, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(data["m"]), str(tmp_path / "x")],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("CHILDREN"), line
        kids = [int(p) for p in line.split()[1:]]
        assert len(kids) >= 2  # two workers (+ the resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        assert not [k for k in kids if _alive(k)], "processes outlived the killed extract"
    finally:
        proc.kill()


def _alive(pid: int) -> bool:
    from edgedistal.utils.io import pid_alive

    return pid_alive(pid)


@pytest.mark.parametrize("verbose", [0, 2])
def test_opencv_decoder_noise_is_quiet_unless_vv(tmp_path: Path, verbose: int) -> None:
    """A broken image is reported per file; OpenCV's own `[ERROR:0@…] readHeader` line on stderr
    is noise at the default verbosity (shown with -vv, which shows every library's log)."""
    bad = tmp_path / "trunc.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nxx")
    code = textwrap.dedent(f"""
        from edgedistal.cli import configure_logging
        configure_logging({verbose})
        import cv2
        assert cv2.imread({str(bad)!r}) is None
        import os
        print("level", os.environ.get("OPENCV_LOG_LEVEL"))
    """)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert res.returncode == 0, res.stderr
    if verbose >= 2:  # -vv leaves OpenCV's log alone (what it prints is OpenCV's business)
        assert "level None" in res.stdout
    else:
        assert "level FATAL" in res.stdout and "ERROR" not in res.stderr, res.stderr
