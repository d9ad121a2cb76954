"""Imports go downward only: serving never imports the builders, selection never imports the
pipeline that drives it. Read from the source (lazy and ``TYPE_CHECKING`` imports count too).

The stages, lowest first::

    errors, utils → data → extract → models → runtime → acquire → pipeline
                                                runtime → deploy, bench   (pipeline may call deploy)
    scale (Ray) sits beside pipeline; commands (the CLI) may import any stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgedistal"

_BASE = {"errors", "utils"}
#: stage package → the edgedistal packages (first dotted part) it may import besides itself
ALLOWED: dict[str, set[str]] = {
    "utils": {"errors"},
    "data": _BASE,
    "extract": _BASE | {"data"},
    "models": _BASE | {"data"},
    "runtime": _BASE | {"data", "extract", "models"},
    "acquire": _BASE | {"data", "extract", "models", "runtime"},
    "deploy": _BASE | {"data", "models", "runtime"},
    "bench": _BASE | {"data", "models", "runtime"},
    "pipeline": _BASE | {"data", "extract", "models", "runtime", "acquire", "deploy"},
    "scale": _BASE | {"data", "extract", "models", "runtime", "acquire"},
    "commands": _BASE | {"data", "extract", "models", "runtime", "acquire", "deploy", "bench",
                         "pipeline", "scale"},
}
#: the root keeps only the entry points and the error types
ROOT_MODULES = {"__init__.py", "__main__.py", "cli.py", "errors.py"}
#: module → modules it must not import (cycles inside a stage that once existed)
NOT_WITHIN = {
    "bench/jetson.py": ("edgedistal.bench.run",),
    "bench/html.py": ("edgedistal.bench.report",),
    "bench/env.py": ("edgedistal.bench.run",),
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            if node.module == "edgedistal":  # ``from edgedistal import x``
                out.update(f"edgedistal.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_every_stage_is_listed_and_the_root_is_small() -> None:
    stages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert stages == set(ALLOWED)
    assert {p.name for p in PKG.glob("*.py")} == ROOT_MODULES


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_no_upward_imports(folder: str) -> None:
    bad = []
    for path in sorted((PKG / folder).rglob("*.py")):
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "edgedistal" or len(parts) < 2 or parts[1] in (folder, *ALLOWED[folder]):
                continue
            bad.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(NOT_WITHIN))
def test_no_cycles_inside_a_stage(module: str) -> None:
    mods = _imports(PKG / module)
    bad = [m for m in mods if any(m == f or m.startswith(f + ".") for f in NOT_WITHIN[module])]
    assert not bad, f"{module} imports {bad}"


def test_runtime_never_imports_the_builders() -> None:
    bad = [f"{p.relative_to(PKG.parent)} imports {m}" for p in sorted((PKG / "runtime").rglob("*.py"))
           for m in _imports(p) if m.startswith(("edgedistal.deploy", "edgedistal.bench"))]
    assert not bad, "\n".join(bad)
