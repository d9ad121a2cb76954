"""Imports go downward only: serving never imports the builders, selection never imports the
pipeline that drives it. Read from the source (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgedistal"

#: package folder → modules it must not import (prefixes of dotted names)
FORBIDDEN = {
    "runtime": ("edgedistal.engines", "edgedistal.export", "edgedistal.int8", "edgedistal.bench",
                "edgedistal.acquire", "edgedistal.distill", "edgedistal.evaluate", "edgedistal.commands"),
    "models": ("edgedistal.runtime", "edgedistal.acquire", "edgedistal.distill", "edgedistal.engines",
               "edgedistal.export", "edgedistal.evaluate", "edgedistal.commands"),
    "acquire": ("edgedistal.distill", "edgedistal.evaluate", "edgedistal.demo", "edgedistal.commands",
                "edgedistal.cli", "edgedistal.engines", "edgedistal.export", "edgedistal.bench"),
    "data": ("edgedistal.models", "edgedistal.runtime", "edgedistal.acquire", "edgedistal.distill",
             "edgedistal.commands"),
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_upward_imports(folder: str) -> None:
    bad = []
    for path in sorted((PKG / folder).rglob("*.py")):
        for mod in _imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    assert not bad, "\n".join(bad)
