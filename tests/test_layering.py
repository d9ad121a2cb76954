"""Imports go downward only: serving never imports the builders, selection never imports the
pipeline that drives it; and inside a stage no two modules import each other, directly or round
a loop. Read from the source (lazy and ``TYPE_CHECKING`` imports count too).

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
    "runtime": _BASE | {"data", "models"},
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(folder: str) -> dict[str, set[str]]:
    """Module → the modules of the same stage it imports (a ``from pkg import sub`` counts as sub)."""
    mods = {_module_name(p): p for p in (PKG / folder).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for mod in _imports(path):
            deps.update(m for m in (mod, *(f"{mod}.{n}" for n in _imported_names(path, mod))) if m in mods)
        deps.discard(name)
        graph[name] = {d for d in deps if not (d in mods and mods[d].name == "__init__.py" and name.startswith(d + "."))}
    return graph


def _imported_names(path: Path, module: str) -> list[str]:
    return [a.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == module for a in node.names]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_no_import_cycles_inside_a_stage(folder: str) -> None:
    cycles = _cycles(_graph(folder))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_runtime_never_imports_the_builders() -> None:
    bad = [f"{p.relative_to(PKG.parent)} imports {m}" for p in sorted((PKG / "runtime").rglob("*.py"))
           for m in _imports(p) if m.startswith(("edgedistal.deploy", "edgedistal.bench"))]
    assert not bad, "\n".join(bad)
