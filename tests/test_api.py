"""The documented Python API: every export resolves, and `import edgedistal` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edgedistal


def test_every_export_resolves() -> None:
    for name in edgedistal.__all__:
        assert getattr(edgedistal, name) is not None, name
    assert "run_distill" in dir(edgedistal)


def test_import_does_not_load_torch() -> None:
    code = "import sys, edgedistal; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert res.stdout.strip() == "False"
