"""int8 per target, and where its calibration images come from.

Two targets want different graphs from the same fp32 model:

* ``tensorrt``: symmetric S8S8 QDQ (int8 activations and per-channel weights, zero point 0,
  MinMax). TensorRT 10's explicit quantisation requires symmetric scales.
* ``cpu``: U8S8 QDQ for ONNX Runtime's CPU kernels (uint8 activations with a zero point,
  per-channel symmetric int8 weights). On x86 the MLAS integer GEMM/conv kernels take uint8 x
  int8 (``VPMADDUBSW``, ``VPDPBUSD`` with VNNI), and ORT's graph optimiser fuses
  ``DequantizeLinear → Conv → QuantizeLinear`` into ``QLinearConv`` (and MatMul/Gemm/Add/pooling
  into their QLinear forms), so the model runs as integer kernels. The QDQ format was chosen
  over QOperator because it fuses to the same integer kernels on CPU (counted by
  ``edgedistal.runtime.ort_graph``) while staying one portable graph. The calibration method
  (MinMax, Entropy, Percentile) is picked by the smallest probability drift against fp32 on a
  held-out slice of the calibration images.

Calibration defaults to the **distilled subset** when a distillation output is given or found
next to the export/checkpoint: it is the data the deployed detector was trained on, so
distillation pays twice. Otherwise generated images are used, and every caller says so loudly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedistal.data.distilled import DISTILLED_FILE, anchor_dir, distilled_manifest, find_distilled
from edgedistal.errors import EdgedistalError

log = logging.getLogger(__name__)

INT8_TARGETS = ("tensorrt", "cpu")
CALIB_METHODS = ("MinMax", "Entropy", "Percentile")
TRAIN_SPLIT_FILE = "split.parquet"  # `train` saves the manifest with the split it used
GENERATED_WARNING = ("int8 calibrated on GENERATED images (no distilled subset or calibration manifest "
                     "given or found): expect a larger drift on real faces; pass --calib-distilled DIR")


# -- calibration source -----------------------------------------------------------------------
@dataclass
class CalibrationPlan:
    """Which manifest calibrates int8 (None: generated images), which of its splits (None: every
    row) and what to call it."""

    manifest: Path | None
    kind: str  # "distilled", "manifest", "train split" or "generated"
    split: str | None = None

    def describe(self) -> str:
        return {"distilled": f"distilled subset {self.manifest}", "manifest": f"manifest {self.manifest}",
                "train split": f"the detector's train split ({self.manifest})",
                "generated": "generated images (synth)"}[self.kind]


def plan_calibration(calib_manifest: str | os.PathLike[str] | None = None,
                     calib_distilled: str | os.PathLike[str] | None = None,
                     anchors: tuple[Any, ...] = ()) -> CalibrationPlan:
    """Explicit manifest > explicit distilled output > distilled output found near ``anchors``
    > the train split ``train`` saved beside the checkpoint (``split.parquet``: the images the
    detector learned from, the distilled subset when it was trained on one) > generated images.
    It does not warn: only an int8 consumer knows the images matter (:data:`GENERATED_WARNING`)."""
    if calib_manifest is not None:
        p = Path(calib_manifest)
        if not p.is_file():
            raise EdgedistalError(f"{p}: calibration manifest not found", "check --calib-manifest")
        return CalibrationPlan(p, "distilled" if p.name == DISTILLED_FILE else "manifest")
    if calib_distilled is not None:
        return CalibrationPlan(distilled_manifest(calib_distilled), "distilled")
    found = find_distilled(*anchors)
    if found is not None:
        log.info("int8 calibration: using the distilled subset found at %s", found)
        return CalibrationPlan(found, "distilled")
    split = find_train_split(*anchors)
    if split is not None:
        log.info("int8 calibration: using the train split saved with the checkpoint, %s", split)
        return CalibrationPlan(split, "train split", "train")
    return CalibrationPlan(None, "generated")


def find_train_split(*anchors: Any) -> Path | None:
    """``split.parquet`` that ``train`` wrote beside its checkpoint, if it has train rows."""
    from edgedistal.data.manifest import Manifest

    for a in anchors:
        if a is None:
            continue
        cand = anchor_dir(a) / TRAIN_SPLIT_FILE
        if cand.is_file():
            try:
                if len(Manifest.load(cand).split("train")):
                    return cand
            except (EdgedistalError, OSError, ValueError):  # not ours or unreadable: look on
                continue
    return None


def split_heldout(images: np.ndarray, every: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out): every ``every``-th image is held out for choosing the method."""
    if len(images) < 2 * every:
        return images, images
    mask = np.zeros(len(images), bool)
    mask[::every] = True
    return np.ascontiguousarray(images[~mask]), np.ascontiguousarray(images[mask])


# -- quantisation -----------------------------------------------------------------------------
class _Reader:
    """ONNX Runtime ``CalibrationDataReader`` over a uint8 image array, in equal batches.

    Equal batches because ORT's histogram calibrators (Entropy, Percentile) stack the per-batch
    outputs and fail on a ragged last batch; the remainder (< ``batch`` images) is dropped.
    """

    def __init__(self, images: np.ndarray, input_name: str = "images", batch: int = 16):
        n = len(images) // batch * batch if len(images) >= batch else len(images)
        self.images, self.input_name, self.batch = images[:n], input_name, max(1, min(batch, n))
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter([{self.input_name: np.ascontiguousarray(self.images[s : s + self.batch])}
                         for s in range(0, len(self.images), self.batch)])


def target_options(target: str) -> dict[str, Any]:
    """quantize_static settings for ``target`` (the record of them goes into the sidecar)."""
    if target == "tensorrt":
        return {"format": "QDQ", "activation": "QInt8", "weight": "QInt8", "per_channel": True,
                "activation_symmetric": True, "weight_symmetric": True}
    if target == "cpu":
        return {"format": "QDQ", "activation": "QUInt8", "weight": "QInt8", "per_channel": True,
                "activation_symmetric": False, "weight_symmetric": True}
    raise EdgedistalError(f"unknown int8 target {target!r}", f"choose from {', '.join(INT8_TARGETS)}")


def quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], images: np.ndarray,
             target: str = "tensorrt", method: str = "MinMax", fmt: str | None = None) -> Path:
    """Static int8 quantisation of ``src`` for ``target`` calibrated on uint8 NHWC ``images``.

    Runs ``quant_pre_process`` (shape inference + graph optimisation) first, as ORT recommends.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgedistal.utils.io import atomic_path

    if len(images) == 0:
        raise EdgedistalError("int8 calibration needs at least one image", "pass --calib-manifest")
    if method not in CALIB_METHODS:
        raise EdgedistalError(f"unknown calibration method {method!r}", f"use one of {', '.join(CALIB_METHODS)}")
    opts = target_options(target)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="edq-") as tmpdir:
        pre = Path(tmpdir) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        # ORT's calibrators write their histogram settings to stdout: kept out of the user's terminal
        with atomic_path(dst) as tmp, contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(pre), str(tmp), _Reader(images),
                quant_format=getattr(QuantFormat, fmt or opts["format"]),
                per_channel=opts["per_channel"],
                activation_type=getattr(QuantType, opts["activation"]),
                weight_type=getattr(QuantType, opts["weight"]),
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"ActivationSymmetric": opts["activation_symmetric"],
                               "WeightSymmetric": opts["weight_symmetric"]},
            )
    return dst


def quantize_for_target(
    fp32: str | os.PathLike[str], dst: str | os.PathLike[str], images: np.ndarray, target: str,
    methods: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Quantise for ``target``; for ``cpu`` try each calibration method and keep the one whose
    probabilities drift least from fp32 on a held-out slice. Returns what was done."""
    from edgedistal.deploy.onnx_io import run_ort

    opts = target_options(target)
    if target == "tensorrt":
        quantize(fp32, dst, images, target, "MinMax")
        return {"int8_target": target, **opts, "method": "MinMax", "n_calibration": len(images)}
    calib, held = split_heldout(images)
    ref, ref_emb = run_ort(fp32, held)
    ref = ref.astype(np.float64)
    embedder = bool(np.isnan(ref).all())  # no probabilities: judge by the embedding's drift
    drift: dict[str, dict[str, float]] = {}
    best: tuple[float, str] | None = None
    with tempfile.TemporaryDirectory(prefix="edq-sel-") as tmpdir:
        for method in methods or CALIB_METHODS:
            cand = Path(tmpdir) / f"{method}.onnx"
            try:
                quantize(fp32, cand, calib, target, method)
            except Exception as exc:  # noqa: BLE001 - one method failing must not sink the others
                log.warning("int8 %s calibration failed: %s", method, exc)
                drift[method] = {"error": f"{exc.__class__.__name__}: {exc}"}  # type: ignore[dict-item]
                continue
            p, e = run_ort(cand, held)
            if embedder:
                cos = 1.0 - np.sum(ref_emb.astype(np.float64) * e, axis=1)
                drift[method] = {"mean_cosine_distance": float(cos.mean()), "max_cosine_distance": float(cos.max())}
                key = (drift[method]["mean_cosine_distance"], method)
            else:
                dp = np.abs(p.astype(np.float64) - ref)
                drift[method] = {"mean_abs_dprob": float(dp.mean()), "max_abs_dprob": float(dp.max())}
                key = (drift[method]["mean_abs_dprob"], method)
            if best is None or key[0] < best[0]:
                best = key
                os.replace(cand, Path(tmpdir) / "best.onnx")
        if best is None:
            raise EdgedistalError(f"{fp32}: every int8 calibration method failed ({drift})",
                                  "check the calibration images / try --int8-target tensorrt")
        from edgedistal.utils.io import atomic_path

        with atomic_path(dst) as tmp:
            os.replace(Path(tmpdir) / "best.onnx", tmp)
    log.info("int8 cpu: calibration %s chosen (held-out mean |Δp| vs fp32: %s)", best[1],
             ", ".join(f"{m} {d['mean_abs_dprob']:.3g}" if "mean_abs_dprob" in d else f"{m} failed"
                       for m, d in drift.items()))
    return {"int8_target": target, **opts, "method": best[1], "n_calibration": len(calib),
            "n_heldout": len(held), "heldout_drift": drift,
            "selection": ("smallest mean embedding cosine distance" if embedder else "smallest mean |Δp|")
            + " vs fp32 ORT on held-out calibration images"}
