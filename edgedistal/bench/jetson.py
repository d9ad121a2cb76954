"""The ``--profile jetson`` mode: Orin batch-1 settings and a FLOP-based latency ESTIMATE.

No Jetson is needed to ask "roughly how fast would this detector be on an Orin Nano / NX?": we
count the model's FLOPs with torch and divide by the GPU's published dense peak times an assumed
utilisation. That is arithmetic on datasheet figures, not a measurement, and it is kept out of
:mod:`edgedistal.bench.run` (which only reports what was timed) so the two can never be confused;
the result is always labelled ESTIMATE. The profile itself (batch 1, fp16 + int8, capped
workspace) lives here too because it only makes sense together with the estimate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar


class _Settings(Protocol):
    """The :class:`edgedistal.bench.run.BenchConfig` fields the profile sets (typed here so that
    this module never imports ``run``, which imports it)."""

    profile: str
    batches: Sequence[int]
    precisions: Sequence[str]
    workspace_mb: int | None


_C = TypeVar("_C", bound=_Settings)

#: Published peaks of the Jetson modules the ``jetson`` profile estimates for. NVIDIA quotes
#: *sparse* INT8 TOPS (module total, GPU + DLA); the figures below are the GPU's *dense* rates:
#: half the sparse GPU INT8 rate, FP16 dense = half of INT8 dense (Ampere tensor cores).
JETSON_PEAKS: dict[str, dict[str, Any]] = {
    "Jetson Orin Nano 8GB": {
        "int8_dense_tops": 20.0,
        "fp16_dense_tflops": 10.0,
        "headline": "40 TOPS INT8 sparse (GPU only; no DLA), 15 W, GPU 625 MHz",
        "source": "NVIDIA Jetson Orin Nano Series datasheet (40 sparse INT8 TOPS); dense = 1/2",
    },
    "Jetson Orin NX 16GB": {
        "int8_dense_tops": 30.0,
        "fp16_dense_tflops": 15.0,
        "headline": "100 TOPS INT8 sparse (GPU ~60 + 2x DLA ~40), 25 W, GPU 918 MHz",
        "source": (
            "NVIDIA Jetson Orin NX Series datasheet (100 sparse INT8 TOPS module total); GPU share "
            "from the Jetson AGX Orin Technical Brief v1.2 per-SM rate (170 sparse INT8 TOPS on "
            "16 SM at 1.3 GHz) scaled to 8 SM at 918 MHz; dense = 1/2"
        ),
    },
}
#: Fraction of peak a small CNN reaches at batch 1 (assumption, not a measurement): convolutions
#: this small are launch- and bandwidth-bound, so the estimate is a compute-bound lower bound.
ASSUMED_UTILISATION = 0.25
#: TensorRT workspace cap of the jetson profile, in MiB: applied by ONNX Runtime's TensorRT EP,
#: which builds its engine at load time; a prebuilt engine keeps the cap it was built with.
JETSON_WORKSPACE_MB = 1024


def jetson_profile(config: _C) -> _C:
    """Batch 1, fp16 + int8, workspace capped: how a camera pipeline runs on an Orin module."""
    config.profile = "jetson"
    config.batches = (1,)
    config.precisions = ("fp16", "int8")
    config.workspace_mb = config.workspace_mb or JETSON_WORKSPACE_MB
    return config


def count_flops(detector: Any, image_size: int) -> int:
    """FLOPs of one forward pass at batch 1 (torch FlopCounterMode: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    detector = detector.eval()
    x = torch.zeros(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        detector(x)
    return int(counter.get_total_flops())


def jetson_estimate(flops: int, utilisation: float = ASSUMED_UTILISATION) -> dict[str, Any]:
    """ESTIMATE of batch-1 latency on Orin modules from FLOPs and published peaks (not measured)."""
    rows = []
    for device, spec in JETSON_PEAKS.items():
        for prec, peak in (("fp16", spec["fp16_dense_tflops"]), ("int8", spec["int8_dense_tops"])):
            ms = flops / (peak * 1e12 * utilisation) * 1e3
            rows.append({
                "device": device, "precision": prec, "peak_dense_tops": peak,
                "estimated_latency_ms": ms, "estimated_throughput_ips": 1e3 / ms,
            })
    return {
        "label": "ESTIMATE (not measured): FLOPs / (published dense peak x assumed utilisation)",
        "flops_per_image": int(flops),
        "assumed_utilisation": utilisation,
        "batch": 1,
        "rows": rows,
        "peaks": JETSON_PEAKS,
        "caveat": "compute-bound model: ignores memory bandwidth, kernel launch and pre/post-processing; "
                  "treat as a lower bound on latency and verify on the device with trtexec",
    }


def model_flops(checkpoint: str | None, onnx_dir: str | None) -> tuple[int | None, str]:
    """FLOPs of the detector at its image size (from the checkpoint, else an export sidecar)."""
    from edgedistal.models.registry import Detector, DetectorConfig, load_checkpoint

    try:
        if checkpoint:
            det, _ = load_checkpoint(checkpoint)
        elif onnx_dir:
            cfg = None
            for p in sorted(Path(onnx_dir).glob("*.json")):
                with contextlib.suppress(Exception):
                    import json

                    d = json.loads(p.read_text())
                    c = d.get("config") or d.get("detector_config")
                    if isinstance(c, dict) and "backbone" in c:
                        cfg = DetectorConfig.from_dict(c)
                        break
            if cfg is None:
                return None, "no detector config found in the export sidecars"
            det = Detector(cfg)
        else:
            return None, "no model given"
        return count_flops(det, det.config.image_size), f"{det.config.backbone} @ {det.config.image_size}px"
    except Exception as exc:  # noqa: BLE001 - the estimate is optional
        return None, f"FLOP count failed: {exc}"


def estimate_section(checkpoint: str | None, onnx_dir: str | None) -> dict[str, Any]:
    """The report's ``jetson_estimate`` entry: the ESTIMATE plus the model, or why it is missing."""
    flops, what = model_flops(checkpoint, onnx_dir)
    if not flops:
        return {"label": "ESTIMATE unavailable", "reason": what}
    section = jetson_estimate(flops)
    section["model"] = what
    return section
