"""Fuzz pass (issue #21): damaged copies of every kind of file edgedistal reads.

Random bytes, truncations, appended junk and wrong JSON types (fixed seeds, a few dozen cases,
well under a minute on 2 cores) for manifests, dataset CSVs, images, videos, ONNX models, export
and engine sidecars, checkpoints and training/distillation state files. Each case runs the CLI
in-process (or, for state files, the loader) and asserts: exit code 0 or 2, never a traceback
(an uncaught exception fails the test), nothing written outside ``--out``, no input changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_captured as run

from edgedistal.errors import EdgedistalError

SEED = 21
JSON_TYPES = ["[]", "1", '"text"', "null", '{"models": 1}', '{"identity": [1]}', '{"config": {"image_size": -4}}',
              '{"a":' * 60 + "1" + "}" * 60, "{"]


def mutants(data: bytes, rng: np.random.Generator, n: int = 4) -> list[bytes]:
    """Truncations, a random overwrite in the middle, appended junk, pure noise."""
    out = [data[: len(data) // 2], data[: max(1, len(data) // 10)], b""]
    for _ in range(n):
        b = bytearray(data)
        if b:
            i = int(rng.integers(0, len(b)))
            j = min(len(b), i + int(rng.integers(1, 64)))
            b[i:j] = rng.integers(0, 256, j - i, dtype=np.uint8).tobytes()
        out.append(bytes(b))
    out += [data + rng.integers(0, 256, 100, dtype=np.uint8).tobytes(), rng.integers(0, 256, 300, dtype=np.uint8).tobytes()]
    return out


def tree(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny dataset (real/fake PNGs + labels.csv), a video, a checkpoint, a hand-made ONNX."""
    import cv2
    import onnx
    import pandas as pd
    from onnx import TensorProto, helper

    from edgedistal.data.manifest import Manifest
    from edgedistal.models.registry import DetectorConfig, build_detector, save_checkpoint

    root = tmp_path_factory.mktemp("fuzzkit")
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(6):
        cls = ("real", "fake")[i % 2]
        p = root / "ds" / cls / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        rows.append((f"{cls}/{i}.png", cls.upper()))
    (root / "ds" / "labels.csv").write_text("path,label\n" + "".join(f"{a},{b}\n" for a, b in rows))
    Manifest(pd.DataFrame({"path": [str(root / "ds" / a) for a, _ in rows],
                           "label": [i % 2 for i in range(6)]})).save(root / "m.parquet")
    vid = root / "clip.mp4"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 64))
    for _ in range(8):
        w.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    w.release()
    save_checkpoint(root / "det.pt", build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    x = helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 32, 32, 3])
    prob = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n"])
    emb = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    axes3 = helper.make_tensor("axes3", TensorProto.INT64, [1], [1])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255])
    nodes = [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "scale"], ["s"]),
             helper.make_node("ReduceMean", ["s", "axes"], ["embedding"], keepdims=0),
             helper.make_node("ReduceMean", ["embedding", "axes3"], ["prob"], keepdims=0)]
    graph = helper.make_graph(nodes, "tiny", [x], [prob, emb], initializer=[axes, axes3, scale])
    (root / "onnx").mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(root / "onnx" / "model_fp32.onnx"))
    (root / "onnx" / "export.json").write_text(json.dumps({"config": {"backbone": "tiny", "image_size": 32},
                                                           "models": {"fp32": {"file": "model_fp32.onnx"}}}))
    return {"root": root, "ds": root / "ds", "m": root / "m.parquet", "video": vid, "ckpt": root / "det.pt",
            "onnx": root / "onnx"}


def _case(work: Path, argv: list, capsys) -> None:
    """Run ``argv``; exit 0 or 2, no traceback, writes only under work/out, inputs unchanged."""
    before = tree(work)
    code, _, err = run(argv, capsys)  # an uncaught exception (a traceback for a user) fails here
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, err
    after = tree(work)
    out = work / "out"
    for path, digest in before.items():
        if out in Path(path).parents:
            continue  # earlier cases' outputs may be replaced
        assert after.get(path) == digest, f"input changed or removed: {path}"
    assert all(Path(p) == out or out in Path(p).parents for p in set(after) - set(before)), set(after) - set(before)


def _copy(kit: dict[str, Path], work: Path) -> dict[str, Path]:
    import shutil

    shutil.copytree(kit["root"], work, dirs_exist_ok=True)
    return {k: work / v.relative_to(kit["root"]) for k, v in kit.items()}


KINDS = ["manifest", "csv", "image", "video", "onnx", "export_json", "engine_json", "checkpoint"]


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_cli_inputs(kit, tmp_path: Path, capsys, kind: str) -> None:
    rng = np.random.default_rng([SEED, KINDS.index(kind)])
    work = tmp_path / "w"
    k = _copy(kit, work)
    img = k["ds"] / "real" / "0.png"
    predict = ["predict", "--detector", "none", "--device", "cpu", "--threads", "1", "-o", work / "out" / "r.csv"]
    target, argv, cases = {
        "manifest": (k["m"], ["extract", k["m"], "-o", work / "out", "--detector", "none", "--workers", "0"], None),
        "csv": (k["ds"] / "labels.csv", ["ingest", k["ds"] / "labels.csv", "-o", work / "out" / "m.parquet"], None),
        "image": (img, ["ingest", k["ds"], "--verify", "-o", work / "out" / "m.parquet"], None),
        "video": (k["video"], [*predict, k["video"], "--checkpoint", k["ckpt"]], None),
        "onnx": (k["onnx"] / "model_fp32.onnx", [*predict, img, "--onnx-dir", k["onnx"]], None),
        "export_json": (k["onnx"] / "export.json", [*predict, img, "--onnx-dir", k["onnx"]], JSON_TYPES),
        "engine_json": (work / "eng" / "model_fp32.json", [*predict, img, "--engine-dir", work / "eng"], JSON_TYPES),
        "checkpoint": (k["ckpt"], [*predict, img, "--checkpoint", k["ckpt"]], None),
    }[kind]
    if kind == "engine_json":
        (work / "eng").mkdir()
        (work / "eng" / "model_fp32.onnx").write_bytes((k["onnx"] / "model_fp32.onnx").read_bytes())
        target.write_text("{}")
    original = target.read_bytes()
    variants = [c.encode() for c in cases] if cases else mutants(original, rng)
    for data in variants:
        target.write_bytes(data)
        _case(work, argv, capsys)
    target.write_bytes(original)


@pytest.mark.parametrize("kind", ["train_state", "distill_state"])
def test_fuzz_state_files(kit, tmp_path: Path, kind: str) -> None:
    """Damaged resume files: a one-line EdgedistalError (or a clean load), nothing else."""
    import torch

    from edgedistal.acquire.loop import LoopState
    from edgedistal.models.train import load_training_state

    rng = np.random.default_rng([SEED, 99])
    path = tmp_path / ("train_state.pt" if kind == "train_state" else "state.json")
    if kind == "train_state":
        torch.save({"total": 1, "n": 1, "model": {}, "optimizer": {}, "gen": torch.zeros(3), "torch_rng": torch.zeros(3),
                    "perm": torch.arange(1), "step": 0, "cursor": 0}, path)
    else:
        path.write_text(json.dumps({"order": [0, 1], "rounds": [], "fingerprint": "x"}))
    variants = mutants(path.read_bytes(), rng) + ([c.encode() for c in JSON_TYPES] if kind == "distill_state" else [])
    for data in variants:
        path.write_bytes(data)
        try:
            if kind == "train_state":
                load_training_state(path, None, None, None, None, 1, 1, False)  # type: ignore[arg-type]
            else:
                LoopState.load(path)
        except EdgedistalError:
            pass
