"""No function in the package runs over 100 lines (``def`` to last line, docstring included;
a CLI command's option decorators are declarations and do not count): a function that long
mixes setup, the loop and the outputs, which are read (and resumed) on their own. The stages
are checked one by one so a failure names where to look."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgedistal"
MAX_LINES = 100
FOLDERS = sorted(p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("_"))


def long_functions(path: Path, limit: int = MAX_LINES) -> list[str]:
    """``name (N lines)`` of each def in ``path`` longer than ``limit`` (``def`` to last line)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_the_root_modules_are_short_too() -> None:
    bad = [f for p in sorted(PKG.glob("*.py")) for f in long_functions(p)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_function_over_100_lines(folder: str) -> None:
    bad = [f for p in sorted((PKG / folder).rglob("*.py")) for f in long_functions(p)]
    assert not bad, "\n".join(bad)


def test_the_count_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1\n")
    global PKG
    old, PKG = PKG, tmp_path
    try:
        assert long_functions(tmp_path / "m.py") == [f"{tmp_path.name}/m.py:1 f ({MAX_LINES + 1} lines)"]
    finally:
        PKG = old
