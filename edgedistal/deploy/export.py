"""ONNX export of the deploy graph, fp16 conversion and int8 QDQ quantisation, with parity checks.

One folder (``export/``) holds everything a runtime needs::

    model_fp32.onnx  model_fp16.onnx  model_int8.onnx  export.json

The graph is :class:`~edgedistal.models.registry.DeployModel`: uint8 NHWC RGB ``images`` in,
``prob`` [N] and ``embedding`` [N, D] (float32) out, normalisation inside the graph. The batch
axis is dynamic. ``export.json`` records the checkpoint config, input size, normalisation, the
sha256 of every model file and a parity check of each precision against PyTorch on real images.

Why the TorchScript ("legacy") exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript`` (not a dependency here), is much slower on CNNs, and brings no benefit for a
static conv net; the legacy exporter takes under a second for resnet18 and yields a plain
opset-17 graph that ONNX Runtime, its quantiser and TensorRT's parser all accept.

The int8 model is a QDQ graph whose flavour follows ``int8_target`` (:mod:`edgedistal.deploy.int8`):
``tensorrt`` (default) is symmetric S8S8 as TensorRT 10's explicit quantisation requires;
``cpu`` is U8S8, which ONNX Runtime's CPU EP fuses into integer kernels throughout. Every model
carries the detector's identity in ``metadata_props`` (see :mod:`edgedistal.runtime.artifacts`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgedistal.data.distilled import DISTILLED_FILE
from edgedistal.deploy.onnx_io import INPUT_NAME, OUTPUT_NAMES, run_ort
from edgedistal.errors import EdgedistalError
from edgedistal.models.registry import DeployModel, Detector
from edgedistal.runtime.base import PRECISIONS
from edgedistal.utils.io import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

OPSET = 17
SIDECAR = "export.json"


def model_filename(precision: str, prefix: str = "model") -> str:
    from edgedistal.runtime.artifacts import onnx_filename

    return onnx_filename(precision, prefix)


# -- fp32 -------------------------------------------------------------------------------------
def export_onnx(detector: Detector, path: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Export ``DeployModel(detector)`` to ONNX (dynamic batch), check it, write atomically."""
    import onnx

    if opset < 17:
        raise EdgedistalError(f"opset {opset} is too old", "use opset 17 or newer")
    size = detector.config.image_size
    deploy = DeployModel(detector).eval().cpu().float()
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    path = Path(path)
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(
            deploy,
            (dummy,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, "prob": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        model = onnx.load(str(tmp))
        _static_embedding(model, int(detector.embed_dim))
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return path


def _static_embedding(model: Any, dim: int) -> None:
    """Pin the embedding output to ``[batch, dim]``: the exporter leaves the feature axis
    symbolic, and runtimes (TensorRT buffers, consumers of embeddings.npy) need it fixed."""
    emb = next(o for o in model.graph.output if o.name == "embedding")
    shape = emb.type.tensor_type.shape
    while len(shape.dim) < 2:
        shape.dim.add()
    shape.dim[1].Clear()
    shape.dim[1].dim_value = dim


# -- fp16 -------------------------------------------------------------------------------------
def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """fp16 weights and activations; graph I/O keeps its types (uint8 in, float32 out).

    Uses ONNX Runtime's own converter (``onnxruntime.transformers.float16``); ``keep_io_types``
    inserts casts at the float outputs, the uint8 input is untouched.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    # ReduceL2/Div of the embedding normalisation overflow easily in fp16: keep them in fp32.
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=["ReduceL2", "Sigmoid"])
    _check_io(half, model)
    _toposort(half.graph)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
        onnx.checker.check_model(str(tmp))
    return dst


def _toposort(graph: Any) -> None:
    """Reorder nodes topologically in place (the converter appends block-list casts at the end)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise EdgedistalError("fp16 conversion produced a cyclic or dangling graph")
        for n in ready:
            known.update(n.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _check_io(new: Any, ref: Any) -> None:
    """Refuse a converted model whose inputs/outputs changed dtype (the runtime contract)."""

    def types(m: Any) -> list[tuple[str, int]]:
        g = m.graph
        return [(v.name, v.type.tensor_type.elem_type) for v in list(g.input) + list(g.output)]

    if types(new) != types(ref):
        raise EdgedistalError(f"conversion changed graph I/O types: {types(ref)} -> {types(new)}")


# -- parity -----------------------------------------------------------------------------------
def torch_reference(detector: Detector, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """fp32 PyTorch outputs of the deploy graph on CPU (the parity reference)."""
    deploy = DeployModel(detector).eval().cpu().float()
    probs, embs = [], []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            p, e = deploy(torch.from_numpy(np.ascontiguousarray(images[s : s + batch])))
            probs.append(p.numpy())
            embs.append(e.numpy())
    return np.concatenate(probs), np.concatenate(embs)


def parity(
    ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """max |Δp|, mean |Δp| and max embedding cosine distance between two (prob, emb) results."""
    (p0, e0), (p1, e1) = ref, got
    dp = np.abs(p0.astype(np.float64) - p1.astype(np.float64))
    # an embedder has no probability (NaN on both sides): that agrees; NaN on one side does not
    dp = np.where(np.isnan(p0) & np.isnan(p1), 0.0, np.where(np.isnan(dp), np.inf, dp))
    n0 = e0 / np.maximum(np.linalg.norm(e0, axis=1, keepdims=True), 1e-12)
    n1 = e1 / np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-12)
    cos = 1.0 - np.sum(n0.astype(np.float64) * n1, axis=1)
    return {
        "max_abs_dprob": float(dp.max()),
        "mean_abs_dprob": float(dp.mean()),
        "max_cosine_distance": float(cos.max()),
        "n_images": len(p0),
    }


# -- calibration images -----------------------------------------------------------------------
def calibration_images(
    manifest_path: str | os.PathLike[str] | None, size: int, n: int = 256, seed: int = 0,
    split: str | None = None,
) -> tuple[np.ndarray, str]:
    """``n`` uint8 images from the manifest (its ``split`` rows only, if given; stratified by
    label, fixed seed), or generated ones.

    Returns ``(images, source)``; ``source`` says where they came from (written to the sidecar).
    """
    from edgedistal.data.images import decode_batch

    if manifest_path is None:
        from edgedistal.data.synth import SynthConfig, generate

        per_group = 8 * 3  # frames_per_video * (1 real + 2 fakes)
        imgs, _ = generate(SynthConfig(n_groups=max(1, -(-n // per_group)), size=size, seed=seed))
        return np.ascontiguousarray(imgs[:n, :, :, ::-1]), "generated (synth; no --calib-manifest)"
    from edgedistal.data.manifest import Manifest

    m = Manifest.load(manifest_path)
    if split is not None:
        m = m.split(split)
    rng = np.random.default_rng(seed)
    labels = m.labels
    idx: list[int] = []
    for lab in np.unique(labels):  # stratify so both classes shape the activation ranges
        pool = np.flatnonzero(labels == lab)
        k = min(len(pool), max(1, round(n * len(pool) / len(m))))
        idx.extend(rng.choice(pool, size=k, replace=False).tolist())
    idx = sorted(idx)[:n]
    paths = [m.paths[i] for i in idx]
    rows = f"{len(paths)} of {len(m)} {split} rows" if split else f"{len(paths)} of {len(m)} rows"
    return decode_batch(paths, size), f"{manifest_path} ({rows})"


# -- orchestration ----------------------------------------------------------------------------
def export_all(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    precisions: tuple[str, ...] = PRECISIONS,
    calib_manifest: str | os.PathLike[str] | None = None,
    calib_size: int = 256,
    opset: int = OPSET,
    int8_target: str = "tensorrt",
    calib_distilled: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Export a checkpoint to ``out_dir`` in the given precisions; write and return the sidecar.

    int8 calibration: ``calib_manifest``, else ``calib_distilled``, else a distillation output
    found next to the checkpoint or ``out_dir``, else the train split saved beside the checkpoint,
    else generated images (logged as a warning when int8 is exported).
    """
    from edgedistal.deploy.int8 import plan_calibration
    from edgedistal.models.embedder import load_model

    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise EdgedistalError(f"unknown precision(s) {bad}", "choose from fp32, fp16, int8")
    if opset < OPSET:  # before any work (and before the int8 calibration warning)
        raise EdgedistalError(f"opset {opset} is too old", f"use --opset {OPSET} or newer")
    detector, payload = load_model(checkpoint)  # a detector, or an embedder (embedder_<p>.onnx)
    plan = plan_calibration(calib_manifest, calib_distilled, anchors=(checkpoint, out_dir))
    side = export_detector(
        detector, out_dir, precisions, plan.manifest, calib_size, opset, checkpoint=str(checkpoint),
        int8_target=int8_target, calib_kind=plan.kind, calib_split=plan.split,
    )
    return side


def export_detector(
    detector: Detector,
    out_dir: str | os.PathLike[str],
    precisions: tuple[str, ...] = PRECISIONS,
    calib_manifest: str | os.PathLike[str] | None = None,
    calib_size: int = 256,
    opset: int = OPSET,
    checkpoint: str = "",
    int8_target: str = "tensorrt",
    calib_kind: str | None = None,
    calib_split: str | None = None,
) -> dict[str, Any]:
    """Like :func:`export_all` for an in-memory detector (tests, benchmarks).

    Every model file gets the detector's identity (weights hash, input size, normalisation,
    embedding size) in its ``metadata_props``, and the sidecar records it once.
    """
    import onnx
    import onnxruntime as ort

    from edgedistal.deploy.int8 import quantize_for_target, target_options
    from edgedistal.runtime.artifacts import (
        detector_identity,
        export_sidecar,
        model_prefix,
        stamp_onnx,
    )

    target_options(int8_target)  # validate before any work
    prefix = model_prefix(detector)  # the embedder's files sit beside the detector's
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = detector.config
    detector = detector.eval().cpu().float()
    identity = detector_identity(detector)
    # the cpu target holds out a fifth of the images to choose its calibration method
    want = calib_size + (calib_size // 4 if int8_target == "cpu" and "int8" in precisions else 0)
    images, source = calibration_images(calib_manifest, cfg.image_size, want, split=calib_split)
    kind = calib_kind or ("generated" if calib_manifest is None else
                          "distilled" if Path(calib_manifest).name == DISTILLED_FILE else "manifest")
    if kind == "generated" and "int8" in precisions:
        from edgedistal.deploy.int8 import GENERATED_WARNING

        log.warning(GENERATED_WARNING)
    calibration = {"source": source, "kind": kind, "n_images": len(images),
                   "manifest": str(calib_manifest) if calib_manifest else None, "split": calib_split}
    ref = torch_reference(detector, images)
    fp32 = export_onnx(detector, out / model_filename("fp32", prefix), opset)
    models: dict[str, Any] = {}
    for prec in ("fp32", *[p for p in precisions if p != "fp32"]):
        path = out / model_filename(prec, prefix)
        extra: dict[str, Any] = {}
        if prec == "fp16":
            convert_fp16(fp32, path)
        elif prec == "int8":
            info = quantize_for_target(fp32, path, images, int8_target)
            extra = {"int8_target": int8_target, "quantisation": info, "calibration": calibration}
        stamp_onnx(path, identity, precision=prec, int8_target=extra.get("int8_target"),
                   calibration=calibration["source"] if prec == "int8" else None)
        models[prec] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            **extra,
            "parity_vs_torch": parity(ref, run_ort(path, images)),
        }
        log.debug("%s: %s parity %s", path, prec, models[prec]["parity_vs_torch"])
    sidecar = {
        "format": "edgedistal-export/1",
        "kind": "embedder" if prefix == "embedder" else "detector",
        "checkpoint": checkpoint,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint and Path(checkpoint).is_file() else None,
        "identity": identity,
        "config": asdict(cfg),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB",
                  "shape": ["batch", cfg.image_size, cfg.image_size, 3]},
        "outputs": {"prob": ["batch"], "embedding": ["batch", detector.embed_dim]},
        "normalisation": {"mean": list(cfg.mean), "std": list(cfg.std), "scale": 255.0,
                          "where": "inside the graph"},
        "opset": opset,
        "exporter": "torch.onnx (TorchScript, dynamo=False)",
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__},
        "calibration": calibration,
        "models": models,
    }
    sidecar["sidecar"] = export_sidecar(prefix)
    write_json_atomic(out / export_sidecar(prefix), sidecar)
    return sidecar


def read_sidecar(export_dir: str | os.PathLike[str], prefix: str = "model") -> dict[str, Any]:
    from edgedistal.runtime.artifacts import export_sidecar

    path = Path(export_dir) / export_sidecar(prefix)
    if not path.exists():
        raise EdgedistalError(
            f"{path}: export sidecar not found",
            "export a checkpoint first: `edgedistal export --checkpoint C --out export/`",
        )
    from edgedistal.runtime.artifacts import read_export_sidecar

    return read_export_sidecar(path)

