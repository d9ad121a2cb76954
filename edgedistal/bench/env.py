"""Environment capture for bench reports: machine, accelerators, drivers and library versions.

A latency number means nothing without the machine it was measured on, so every bench report
carries a snapshot of the CPU, GPU (torch and nvidia-smi views), driver/CUDA versions, installed
package versions, load average and, on a Jetson, the L4T/JetPack release and nvpmodel power mode.
This is probing the host (files under /etc and /proc, subprocesses, optional imports), not
measuring anything, so it lives apart from the timing code in :mod:`edgedistal.bench.run`; every
probe degrades to ``None`` instead of failing the benchmark.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from edgedistal.utils.machine import cpu_flags, cpu_model, int8_dot_product


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``cmd`` if the tool exists and exits 0 within ``timeout`` s; None otherwise."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def _version(dist: str) -> str | None:
    """Installed version of distribution ``dist``, or None if it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def jetson_info() -> dict[str, Any] | None:
    """L4T release, JetPack version and nvpmodel power mode on a Jetson; None elsewhere."""
    rel = Path("/etc/nv_tegra_release")
    if not rel.exists():
        return None
    info: dict[str, Any] = {"nv_tegra_release": None, "l4t": None, "jetpack": None, "power_mode": None}
    with contextlib.suppress(OSError):
        first = rel.read_text().splitlines()[0]
        info["nv_tegra_release"] = first.strip("# ").strip()
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first)
        if m:
            info["l4t"] = f"{m.group(1)}.{m.group(2)}"
    jp = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    info["jetpack"] = jp or None
    info["power_mode"] = _run(["nvpmodel", "-q"])
    with contextlib.suppress(OSError):
        info["model"] = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    return info


def capture_environment() -> dict[str, Any]:
    """Everything needed to interpret a number: machine, accelerators, library versions, load."""
    env: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "int8_dot_product": int8_dot_product(cpu_flags()),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {
            d: _version(d)
            for d in ("edgedistal", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy", "timm")
        },
        "gpu": None, "jetson": jetson_info(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with contextlib.suppress(Exception):
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["versions"]["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = {
                "name": torch.cuda.get_device_name(0),
                "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 2**30, 1),
                "count": torch.cuda.device_count(),
                "cudnn": torch.backends.cudnn.version(),
            }
    with contextlib.suppress(Exception):
        import onnxruntime as ort

        env["ort_providers"] = ort.get_available_providers()
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if smi:
        name, driver, mem = [s.strip() for s in smi.splitlines()[0].split(",")][:3]
        env["nvidia_smi"] = {"name": name, "driver": driver, "memory": mem}
        cuda = _run(["nvidia-smi"])
        m = re.search(r"CUDA Version:\s*([\d.]+)", cuda or "")
        env["nvidia_smi"]["cuda_driver_api"] = m.group(1) if m else None
    return env


def finish_environment(env: dict[str, Any]) -> dict[str, Any]:
    """Add the load average at the end of the run to ``env`` (in place) and return it."""
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return env
