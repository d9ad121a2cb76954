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


#: CPU flags that decide what runs fast here (bf16 training, int8 dot products).
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    with contextlib.suppress(OSError):
        m = re.search(r"^flags\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if m:
            return set(m.group(1).split())
    return set()


def cpu_has_fast_bf16() -> bool:
    """True where bf16 matmuls run in hardware (AVX-512 BF16 or AMX).

    Without them oneDNN emulates bf16, and training ran 11x *slower* than fp32 (ResNet-10t 64 px
    on an AVX2-only EPYC: 11.5 vs 133 img/s), so ``--amp auto`` must not pick it there.
    """
    flags = cpu_flags()
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
        "cpu_flags": sorted(cpu_flags() & set(FLAGS_OF_INTEREST)),
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
