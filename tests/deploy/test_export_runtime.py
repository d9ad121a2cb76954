"""ONNX export (fp32/fp16/int8), runtime backends, backend selection and engine sidecars."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgedistal.deploy.engines import (
    build_all,
    check_engine_compatible,
    compat_problems,
    ensure_export,
)
from edgedistal.deploy.export import (
    export_detector,
    model_filename,
    sha256_file,
    torch_reference,
)
from edgedistal.deploy.onnx_io import run_ort
from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint
from edgedistal.runtime.artifacts import check_artifacts, onnx_metadata
from edgedistal.runtime.base import Backend
from edgedistal.runtime.ort_backend import OrtBackend
from edgedistal.runtime.select import available_backends, get_backend
from edgedistal.runtime.torch_backend import TorchBackend
from edgedistal.utils.io import write_json_atomic

SIZE = 64
N_IMAGES = 256  # fp32 parity set
N_CALIB = 64  # calibration + fp16/int8 checks (ORT's fp16 CPU path is slow)


def _detector() -> Detector:
    torch.manual_seed(0)  # untrained but deterministic
    return Detector(DetectorConfig(backbone="resnet18", image_size=SIZE)).eval()


@pytest.fixture(scope="module")
def calib_manifest(tmp_path_factory: pytest.TempPathFactory, shared_data) -> Path:
    """256 real DFDC face crops when ../shared is present, else generated faces."""
    from edgedistal.data.manifest import Manifest

    out = tmp_path_factory.mktemp("calib")
    try:
        root = shared_data("dfdc-faces-dev")
        paths = sorted((root / "faces_224").glob("*.jpg"))[:N_IMAGES]
        labels = [i % 2 for i in range(len(paths))]  # labels only stratify calibration here
    except pytest.skip.Exception:
        from edgedistal.data.synth import SynthConfig, write_dataset

        meta = write_dataset(out / "synth", SynthConfig(n_groups=11, size=SIZE, seed=5))
        import pandas as pd

        df = pd.read_csv(meta)
        paths = [meta.parent / p for p in df["path"]][:N_IMAGES]
        labels = (df["label"] == "FAKE").astype(int).tolist()[:N_IMAGES]
    m = Manifest.from_records([{"path": str(p), "label": lab} for p, lab in zip(paths, labels, strict=True)])
    return m.save(out / "calib.parquet")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, calib_manifest: Path) -> tuple[Path, dict]:
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("export")
    side = export_detector(_detector(), out, ("fp32", "fp16", "int8"), calib_manifest, N_CALIB)
    save_checkpoint(out / "ck.pt", _detector())
    return out, side


@pytest.fixture(scope="module")
def images(calib_manifest: Path) -> np.ndarray:
    from edgedistal.data.images import decode_batch
    from edgedistal.data.manifest import Manifest

    return decode_batch(Manifest.load(calib_manifest).paths, SIZE)


@pytest.fixture(scope="module")
def reference(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return torch_reference(_detector(), images)


def test_onnx_graph_contract(exported):
    out, side = exported
    model = onnx.load(str(out / model_filename("fp32")))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["prob", "embedding"]
    inp = model.graph.input[0]
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert inp.type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for prec, meta in side["models"].items():
        assert meta["sha256"] == sha256_file(out / meta["file"]), prec
    assert side["input"]["shape"][1:] == [SIZE, SIZE, 3]
    assert side["calibration"]["n_images"] == N_CALIB


def test_ort_fp32_matches_torch(exported, images, reference):
    out, _ = exported
    ref = reference
    assert len(images) == N_IMAGES
    ort = OrtBackend(out / model_filename("fp32"), batch_size=64)
    p, e = ort.infer(images)
    assert p.shape == (len(images),) and e.shape == ref[1].shape and p.dtype == np.float32
    assert np.abs(p - ref[0]).max() <= 1e-4
    assert np.abs(e - ref[1]).max() <= 1e-3
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)


def test_fp16_and_int8_run_and_stay_close(exported, calib_manifest, reference):
    from edgedistal.deploy.export import calibration_images

    out, side = exported
    # the export's own calibration/parity set (same selection rule, same seed)
    images, _ = calibration_images(calib_manifest, SIZE, N_CALIB)
    ref = torch_reference(_detector(), images)
    fp16 = onnx.load(str(out / model_filename("fp16")))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in fp16.graph.output)
    int8 = onnx.load(str(out / model_filename("int8")))
    assert sum(n.op_type == "QuantizeLinear" for n in int8.graph.node) >= 10  # really QDQ
    for prec, tol_p, tol_cos in (("fp16", 5e-3, 1e-3), ("int8", 5e-2, 5e-2)):
        p, e = run_ort(out / model_filename(prec), images)
        assert np.abs(p - ref[0]).max() <= tol_p, prec
        cos = 1 - np.sum(e * ref[1], axis=1)
        assert cos.max() <= tol_cos, prec
        recorded = side["models"][prec]["parity_vs_torch"]
        assert recorded["max_abs_dprob"] == pytest.approx(float(np.abs(p - ref[0]).max()), abs=1e-6)


def test_torch_backend_partial_batches_match_one_shot(images, reference):
    det = _detector()
    small = TorchBackend(det, batch_size=48)
    assert isinstance(small, Backend)
    p1, e1 = small.infer(images[:100])  # 48 + 48 + 4
    np.testing.assert_allclose(p1, reference[0][:100], atol=1e-5)
    np.testing.assert_allclose(e1, reference[1][:100], atol=1e-4)
    with pytest.raises(EdgedistalError, match="expected uint8 images"):
        small.infer(images[:2, :32])
    with pytest.raises(EdgedistalError, match="int8"):
        TorchBackend(det, precision="int8")


def test_auto_backend_picks_and_says_so(exported, caplog):
    out, _ = exported
    assert available_backends()[-1] == "torch"
    with caplog.at_level(logging.INFO, logger="edgedistal.runtime.select"):
        be = get_backend("auto", checkpoint=out / "ck.pt", onnx_dir=out, batch_size=8)
    assert be.info.name in ("onnxruntime", "torch")
    assert f"picked {be.info.name}" in caplog.text
    torch_only = get_backend("auto", checkpoint=out / "ck.pt")
    assert torch_only.info.name == "torch"
    int8 = get_backend("auto", "int8", checkpoint=out / "ck.pt", onnx_dir=out)
    assert int8.info.name == "onnxruntime" and "int8" in int8.info.detail
    with pytest.raises(EdgedistalError, match="no backend can run int8"):
        get_backend("auto", "int8", checkpoint=out / "ck.pt")


def test_tensorrt_backend_without_tensorrt_is_a_clear_error(exported, tmp_path):
    pytest.importorskip("onnx")  # always present; the point is the next line
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed") as err:
        get_backend("tensorrt", engine_dir=tmp_path)
    assert "onnxruntime" in (err.value.hint or "")


def test_engine_sidecar_mismatch_asks_for_rebuild(tmp_path):
    engine = tmp_path / "model_fp16.engine"
    engine.write_bytes(b"not really an engine")
    built = {"tensorrt": "10.3.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    write_json_atomic(engine.with_suffix(".json"), {**built, "precision": "fp16"})
    assert check_engine_compatible(engine, dict(built))["precision"] == "fp16"
    other = {**built, "compute_capability": "8.7", "gpu": "Orin"}
    assert len(compat_problems(built, other)) == 2
    with pytest.raises(EdgedistalError, match="another system") as err:
        check_engine_compatible(engine, other)
    assert "rebuild" in err.value.hint and "8.7" in str(err.value)
    with pytest.raises(EdgedistalError, match="rebuild"):
        check_engine_compatible(engine, {**built, "tensorrt": "10.9.0"})
    engine.with_suffix(".json").unlink()
    with pytest.raises(EdgedistalError, match="sidecar missing"):
        check_engine_compatible(engine, built)


def test_engines_without_tensorrt_writes_ort_artifacts(exported, tmp_path):
    out, _ = exported
    summary = build_all(out, tmp_path / "engines", ("fp16", "int8"))
    if summary["tensorrt"]:
        pytest.skip("TensorRT is installed here")
    assert set(summary["built"]) == {"fp16", "int8"} and not summary["failed"]
    assert "TensorRT is not installed" in summary["note"]
    eng = tmp_path / "engines"
    assert sha256_file(eng / "model_fp16.onnx") == sha256_file(out / "model_fp16.onnx")
    # no TensorRT: int8 is re-quantised for ORT's CPU kernels (U8S8), method chosen on held-out drift
    side = json.loads((eng / "model_int8.json").read_text())
    assert side["int8_target"] == "cpu" and side["runtime"] == "onnxruntime"
    assert side["quantisation"]["method"] in ("MinMax", "Entropy", "Percentile")
    assert all("mean_abs_dprob" in d for d in side["quantisation"]["heldout_drift"].values())
    assert side["identity"]["weights_sha256"] == json.loads((out / "export.json").read_text())["identity"]["weights_sha256"]
    assert onnx_metadata(eng / "model_int8.onnx")["int8_target"] == "cpu"
    with pytest.raises(EdgedistalError, match="no exported model") as err:
        ensure_export(tmp_path / "empty", demo_if_missing=True, demo_checkpoint=tmp_path / "none.pt")
    assert "make demo" in (err.value.hint or "")


def test_engines_cli_without_tensorrt_exits_zero(exported, tmp_path):
    from click.testing import CliRunner

    from edgedistal.commands.engines import engines

    out, _ = exported
    result = CliRunner().invoke(engines, ["--export-dir", str(out), "--out", str(tmp_path / "e"),
                                          "--precisions", "fp32,int8"])
    if "TensorRT engines built" in result.output:
        pytest.skip("TensorRT is installed here")
    assert result.exit_code == 0, result.output
    assert "TensorRT is not installed" in result.output
    assert (tmp_path / "e" / "model_int8.onnx").exists() and (tmp_path / "e" / "engines.json").exists()


def test_identity_in_sidecar_and_metadata_props(exported):
    out, side = exported
    ident = side["identity"]
    assert ident["image_size"] == SIZE and len(ident["weights_sha256"]) == 64
    for prec in ("fp32", "fp16", "int8"):
        meta = onnx_metadata(out / model_filename(prec))
        assert meta["weights_sha256"] == ident["weights_sha256"] and meta["precision"] == prec
        assert meta["normalisation"]["std"] == pytest.approx(list(ident["normalisation"]["std"]))
        emb = onnx.load(str(out / model_filename(prec))).graph.output[1].type.tensor_type.shape.dim[1]
        assert emb.dim_value == ident["embedding_dim"] == meta["embedding_dim"]  # static embedding size
    assert set(check_artifacts(("fp32", "fp16", "int8"), out, checkpoint=out / "ck.pt")) == {"fp32", "fp16", "int8"}


def test_mismatches_are_refused_with_one_line(exported, tmp_path):
    out, _ = exported
    torch.manual_seed(1)
    other = Detector(DetectorConfig(backbone="resnet18", image_size=SIZE)).eval()
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(EdgedistalError, match="different models") as err:  # checkpoint B vs ONNX A
        check_artifacts(("fp32",), out, checkpoint=tmp_path / "other.pt")
    assert "\n" not in str(err.value) and "weights_sha256" in str(err.value)
    # an ONNX file next to another model's export.json
    mixed = tmp_path / "mixed"
    shutil.copytree(out, mixed)
    export_detector(other, tmp_path / "b", ("fp32",), None, 8)
    shutil.copyfile(tmp_path / "b" / "model_fp32.onnx", mixed / "model_fp32.onnx")
    with pytest.raises(EdgedistalError, match="sidecar"):
        check_artifacts(("fp32",), mixed)
    # engines refuses zero-byte and truncated files instead of listing them as written
    (mixed / "model_fp32.onnx").write_bytes((out / "model_fp32.onnx").read_bytes())
    (mixed / "model_fp16.onnx").write_bytes(b"")
    data = (out / "model_int8.onnx").read_bytes()
    (mixed / "model_int8.onnx").write_bytes(data[: len(data) // 2])
    summary = build_all(mixed, tmp_path / "eng", ("fp32", "fp16", "int8"), int8_target="tensorrt")
    if summary["tensorrt"]:
        pytest.skip("TensorRT is installed here")
    assert set(summary["failed"]) == {"fp16", "int8"} and "fp32" in summary["built"]
    assert "empty" in summary["failed"]["fp16"] and "invalid ONNX" in summary["failed"]["int8"]


def test_generated_calibration_warns_only_when_int8_is_exported(tmp_path, caplog):
    """An fp32-only export uses generated images for parity checks alone: no int8 warning (it
    used to print one, even before finding that the checkpoint did not exist)."""
    import logging

    from edgedistal.deploy.export import export_all
    from edgedistal.deploy.int8 import GENERATED_WARNING
    from edgedistal.models.registry import DetectorConfig, build_detector

    ck = tmp_path / "run" / "detector.pt"
    ck.parent.mkdir()
    save_checkpoint(ck, build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    with pytest.raises(EdgedistalError, match="not found"), caplog.at_level(logging.WARNING):
        export_all(tmp_path / "missing.pt", tmp_path / "x", ("fp32", "int8"))
    assert GENERATED_WARNING not in caplog.text
    with caplog.at_level(logging.WARNING):
        export_all(ck, tmp_path / "fp32", ("fp32",), calib_size=8)
    assert GENERATED_WARNING not in caplog.text
    with caplog.at_level(logging.WARNING):
        export_all(ck, tmp_path / "int8", ("fp32", "int8"), calib_size=8, int8_target="cpu")
    assert caplog.text.count(GENERATED_WARNING) == 1


def test_int8_calibrates_on_the_train_split_saved_with_the_checkpoint(tmp_path, synth_dir, caplog):
    """A detector trained with ``--distilled d`` (d anywhere, e.g. a sibling folder) used to be
    calibrated on GENERATED images: export only looked for distilled.parquet near the checkpoint.
    ``train`` saves the split it used (split.parquet: its train rows are what the detector learned
    from), so export calibrates on those rows, says so in the sidecar, and engines re-quantise on
    the same rows."""
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import ensure_split
    from edgedistal.deploy.export import export_all
    from edgedistal.deploy.int8 import GENERATED_WARNING, TRAIN_SPLIT_FILE
    from edgedistal.models.registry import build_detector

    run = tmp_path / "det_distilled"
    run.mkdir()
    m = ensure_split(read_layout(synth_dir).manifest, seed=0)
    m.save(run / TRAIN_SPLIT_FILE)
    ck = run / "detector.pt"
    save_checkpoint(ck, build_detector(DetectorConfig(backbone="resnet10t", image_size=32)))
    with caplog.at_level(logging.WARNING):
        side = export_all(ck, tmp_path / "out", ("fp32", "int8"), calib_size=8, int8_target="cpu")
    assert GENERATED_WARNING not in caplog.text
    cal = side["calibration"]
    assert cal["kind"] == "train split" and cal["split"] == "train" and cal["manifest"] == str(run / TRAIN_SPLIT_FILE)
    assert f"of {len(m.split('train'))} train rows" in cal["source"]
    # engines re-quantising for another target reads the same rows (recorded in export.json)
    from edgedistal.deploy.engines import build_all

    build_all(tmp_path / "out", tmp_path / "eng", ("int8",), int8_target="tensorrt", calib_size=8, device="cpu")
    eng = json.loads(next((tmp_path / "eng").glob("model_int8*.json")).read_text())
    assert eng["calibration"]["split"] == "train" and "train rows" in eng["calibration"]["source"]
    # a split file without train rows is not a calibration source: generated images, with the warning
    m.where(m.df["split"] != "train").save(run / TRAIN_SPLIT_FILE)
    with caplog.at_level(logging.WARNING):
        side = export_all(ck, tmp_path / "out2", ("fp32", "int8"), calib_size=8, int8_target="cpu")
    assert side["calibration"]["kind"] == "generated" and caplog.text.count(GENERATED_WARNING) == 1
