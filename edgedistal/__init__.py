"""edgedistal: distil deepfake-detection datasets with active learning, ship detectors to edge GPUs.

The Python API is the same library the CLI calls; each name below is imported on first use, so
``import edgedistal`` stays fast (no torch) until you touch one.

Data: :class:`Manifest` (load/save/split), :func:`read_layout` (a dataset folder → manifest),
:func:`run_extract` + :class:`ExtractConfig` (videos → face crops).
Training: :func:`train_on_manifest` + :class:`TrainConfig`, :func:`load_checkpoint`.
Distillation: :func:`run_distill` + :class:`DistillConfig`.
Evaluation: :func:`run_evaluation` + :class:`EvalConfig`, :func:`write_report`.
Deployment: :func:`export_all` (ONNX), :class:`BackendSpec` / :func:`get_backend` + :func:`score_manifest`.
Errors: :class:`EdgedistalError` (``str(err)`` is the problem, ``err.hint`` the fix).

Example — distil a dataset folder to a fifth of its train split::

    import edgedistal as ed

    manifest = ed.read_layout("data/my_dataset").manifest
    result = ed.run_distill(manifest, ed.DistillConfig(budget=0.2, device="cpu"), "distilled/")
    print(len(result.manifest), "picked ->", result.out_dir / "distilled.parquet")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → module that defines it (imported lazily by :func:`__getattr__`).
_EXPORTS: dict[str, str] = {
    "Manifest": "edgedistal.data.manifest",
    "read_layout": "edgedistal.data.layouts",
    "run_extract": "edgedistal.extract.run",
    "ExtractConfig": "edgedistal.extract.run",
    "train_on_manifest": "edgedistal.models.train",
    "TrainConfig": "edgedistal.models.train",
    "load_checkpoint": "edgedistal.models.registry",
    "run_distill": "edgedistal.pipeline.distill",
    "DistillConfig": "edgedistal.pipeline.distill",
    "run_evaluation": "edgedistal.pipeline.evaluate",
    "EvalConfig": "edgedistal.pipeline.evaluate",
    "write_report": "edgedistal.pipeline.report",
    "export_all": "edgedistal.deploy.export",
    "BackendSpec": "edgedistal.runtime.select",
    "get_backend": "edgedistal.runtime.select",
    "score_manifest": "edgedistal.acquire.scorer",
    "EdgedistalError": "edgedistal.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgedistal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
