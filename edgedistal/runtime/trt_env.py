"""What loading a TensorRT engine needs: the ``tensorrt`` import (with the install hint), the
GPU's identity, and the check that an engine was built for this GPU and TensorRT version.

It lives in the runtime, below the builders (:mod:`edgedistal.deploy.engines` imports it), so serving an
engine never imports the code that builds one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgedistal.errors import EdgedistalError, MissingDependencyError
from edgedistal.runtime.artifacts import artifact_sidecar
from edgedistal.utils.io import read_json_dict


def import_tensorrt() -> Any:
    """``import tensorrt`` or raise a MissingDependencyError that says what to do."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(
            "TensorRT is not installed (python package `tensorrt`)",
            "install TensorRT 10 on the target (e.g. `pip install tensorrt` or JetPack), or use "
            "--backend onnxruntime / torch",
        ) from exc
    return trt


def gpu_identity() -> dict[str, Any]:
    """Name and compute capability of CUDA device 0 via cuda-python (torch as a fallback)."""
    try:
        from cuda.bindings import runtime as cudart

        err, prop = cudart.cudaGetDeviceProperties(0)
        if err == cudart.cudaError_t.cudaSuccess:
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return {"gpu": name.strip("\x00 "), "compute_capability": f"{prop.major}.{prop.minor}"}
    except ImportError:
        pass
    import torch

    if not torch.cuda.is_available():
        raise EdgedistalError("no CUDA GPU found", "TensorRT engines need an NVIDIA GPU")
    major, minor = torch.cuda.get_device_capability(0)
    return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}


def compat_problems(sidecar: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the build system in ``sidecar`` and the ``current`` one."""
    problems = []
    for key, what in (("tensorrt", "TensorRT version"), ("compute_capability", "GPU compute capability"),
                      ("gpu", "GPU")):
        built, now = sidecar.get(key), current.get(key)
        if built is not None and now is not None and str(built) != str(now):
            problems.append(f"{what}: built with {built}, running {now}")
    return problems


def check_engine_compatible(engine_path: str | os.PathLike[str], current: dict[str, Any]) -> dict[str, Any]:
    """Read the engine's sidecar; raise a 'rebuild' error if it was built elsewhere."""
    side = artifact_sidecar(engine_path)
    if not side.exists():
        raise EdgedistalError(
            f"{side}: engine sidecar missing, cannot tell which GPU/TensorRT built {Path(engine_path).name}",
            "rebuild the engines on this machine: `edgedistal engines --export-dir export --out engines`",
        )
    meta = read_json_dict(side, "engine sidecar", "rebuild the engines: `edgedistal engines --export-dir export --out engines`")
    problems = compat_problems(meta, current)
    if problems:
        raise EdgedistalError(
            f"{engine_path}: engine was built for another system ({'; '.join(problems)}); rebuild it",
            "TensorRT engines are not portable: rebuild them on this machine with "
            "`edgedistal engines --export-dir export --out engines`",
        )
    return meta
