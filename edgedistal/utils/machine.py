"""What machine produced a number: every benchmark and report states it the same way."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (x86 'model name'; ARM boards fall back to the DT model)."""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        for key in ("model name", "Model", "Hardware", "cpu model"):
            m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
            if m:
                return m.group(1).strip()
    with contextlib.suppress(OSError):
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    return platform.processor() or platform.machine()


#: CPU features that decide how fast int8 / fp16 / bf16 kernels can be.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
              "asimd", "asimddp", "i8mm", "sve", "bf16")


def cpu_flags(relevant: tuple[str, ...] = SIMD_FLAGS) -> list[str]:
    """The ``relevant`` SIMD flags this CPU reports in /proc/cpuinfo (x86 ``flags``, ARM ``Features``)."""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            have = set(m.group(1).split())
            return [f for f in relevant if f in have]
    return []


def int8_dot_product(flags: list[str]) -> str:
    """Which int8 dot-product instructions ONNX Runtime's MLAS can use on this CPU, in words."""
    if "amx_int8" in flags:
        return "AMX int8 tiles"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI (VPDPBUSD)"
    if "avx_vnni" in flags:
        return "AVX-VNNI (256-bit VPDPBUSD)"
    if "avx2" in flags:
        return "AVX2 only (VPMADDUBSW, no VNNI)"
    if "asimddp" in flags or "i8mm" in flags:
        return "ARM dot product (SDOT/UDOT" + (", I8MM)" if "i8mm" in flags else ")")
    return "no int8 dot-product instructions found"


def cpu_has_fast_bf16() -> bool:
    """True where bf16 matmuls run in hardware (AVX-512 BF16 or AMX).

    Without them oneDNN emulates bf16, and training ran 11x *slower* than fp32 (ResNet-10t 64 px
    on an AVX2-only EPYC: 11.5 vs 133 img/s), so ``--amp auto`` must not pick it there.
    """
    flags = set(cpu_flags(("avx2", "avx512_bf16", "amx_bf16")))
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    with contextlib.suppress(Exception):  # no /proc/cpuinfo: ask torch (reports AMX as such)
        import torch

        return "AMX" in torch.backends.cpu.get_cpu_capability()
    return False


def machine_summary(device: str | None = None, **extra: Any) -> dict[str, Any]:
    """CPU model, cores, load, Python/torch/NumPy versions, and the GPU when ``device`` is CUDA."""
    import numpy as np

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_flags": cpu_flags(),
    }
    with contextlib.suppress(ImportError):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if (device or "").startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    info.update(extra)
    return info


# -- the --threads cap -------------------------------------------------------------------------
_thread_cap: int | None = None


def usable_cores() -> int:
    """Cores this process may use (its affinity mask); CPU pools should not oversubscribe them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_thread_cap(n: int | None) -> None:
    """``--threads N`` for the whole process: torch's and OpenCV's pools now, and every ONNX
    Runtime session opened later (they ask :func:`cpu_threads`). ``None`` lifts the cap."""
    global _thread_cap
    _thread_cap = n
    if not n:
        return
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(n)
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(n)


def cpu_threads(requested: int | None = None) -> int:
    """Threads for a CPU pool: ``requested``, else the ``--threads`` cap, else the usable cores."""
    return requested or _thread_cap or usable_cores()
