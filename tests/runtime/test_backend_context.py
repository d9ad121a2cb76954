"""Every shipped backend is a context manager: ``with backend:`` closes it, also on an error."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgedistal.runtime.base import BaseBackend

RUNTIME = Path(__file__).resolve().parents[2] / "edgedistal" / "runtime"


class _Counting(BaseBackend):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_closes_the_backend_once() -> None:
    with _Counting() as be:
        assert be.closed == 0
    assert be.closed == 1
    be = _Counting()
    with pytest.raises(ValueError), be:
        raise ValueError("inference failed")
    assert be.closed == 1


@pytest.mark.parametrize("path", sorted(RUNTIME.glob("*_backend.py")), ids=lambda p: p.name)
def test_each_backend_builds_on_the_base(path: Path) -> None:
    """The ``*Backend`` classes of ``runtime/*_backend.py`` inherit ``__enter__``/``__exit__``."""
    classes = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name.endswith("Backend")]
    assert classes and all(any(getattr(b, "id", None) == "BaseBackend" for b in c.bases) for c in classes)
