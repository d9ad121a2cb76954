"""Path safety for every writer: nothing outside ``--out`` is written, no input is replaced.

One small module so the rule is enforced in one place (issue #21) instead of patched per site:

* :func:`normal` — the absolute, ``..``-free spelling of a path (string work, no disk access).
  Manifests store paths in this form, so ``../../x.jpg`` never reaches a writer.
* :func:`location` — where writing to a path really lands: its folder resolved (symlinks
  followed), its own name kept (a symlink *at* the path is replaced, not followed).
* :func:`require_under` — proves a destination lies under the output folder, else refuses.
* :func:`plan_writes` — checks a whole batch of destinations *before* the first write: each under
  the output folder, none landing on an input file. Callers write only after it returns.
* :func:`refuse_foreign` — an existing output file that is not ours is never replaced without
  ``--overwrite``.

The checks run once per command on the files it writes (not per training step or image batch),
so they cost nothing measurable on the hot paths; ``docs/safety.md`` has the measurement.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from edgedistal.errors import EdgedistalError


def normal(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """Absolute, normalised ``path`` (``base`` for relative ones, else the working folder)."""
    p = os.fspath(path)
    if base is not None and not os.path.isabs(p):
        p = os.path.join(os.fspath(base), p)
    return Path(os.path.normpath(os.path.abspath(p)))


def real(path: str | os.PathLike[str]) -> Path:
    """``path`` with every symlink resolved (it need not exist)."""
    return Path(os.path.realpath(path))


def location(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` replaces: its folder resolved, its own name kept."""
    p = normal(path)
    return real(p.parent) / p.name


def is_under(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether writing ``path`` lands inside ``root`` (both resolved)."""
    loc, top = location(path), real(root)
    return loc == top or top in loc.parents


def require_under(path: str | os.PathLike[str], root: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` if writing it lands under ``root``; otherwise a refusal naming both."""
    if not is_under(path, root):
        raise EdgedistalError(
            f"{path}: would be written outside {what} {root} (resolves to {location(path)}); refusing",
            "manifest paths must not climb out with `..` or symlinks; re-ingest the data, or pick another --out",
        )
    return normal(path)


def plan_writes(dsts: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str],
                inputs: Iterable[str | os.PathLike[str]], what: str = "--out") -> list[Path]:
    """Check every destination before anything is written; return them normalised.

    Each must land under ``root``, and none may land on (or, if it already exists, resolve to)
    one of ``inputs``: replacing it would destroy the user's original.
    """
    protected = set()
    for p in inputs:
        protected.add(normal(p))
        protected.add(real(p))
    out = []
    for d in dsts:
        dst = require_under(d, root, what)
        hits = {location(dst)} | ({real(dst)} if os.path.lexists(dst) and not os.path.islink(dst) else set())
        if hits & protected:
            raise EdgedistalError(
                f"{dst}: is one of the input files; writing it would replace the original",
                f"pass a {what} that is not inside the dataset's folders (e.g. a new, empty folder)",
            )
        out.append(dst)
    return out


def refuse_foreign(path: str | os.PathLike[str], ours: Callable[[Path], bool], overwrite: bool,
                   option: str = "--out") -> None:
    """Refuse to replace an existing ``path`` that ``ours`` does not recognise, unless ``overwrite``."""
    p = Path(path)
    if overwrite or not os.path.lexists(p):
        return
    if p.is_dir():
        raise EdgedistalError(f"{p}: is a folder; {option} must be a file path", f"pass a file name, e.g. {p / 'out'}")
    if not ours(p):
        raise EdgedistalError(f"{p}: exists and is not an edgedistal output; refusing to replace it",
                              f"pass a new {option}, delete that file, or add --overwrite")


def csv_header_is(path: str | os.PathLike[str], columns: Iterable[str]) -> bool:
    """Whether a csv's first line is exactly ``columns`` (an earlier output of that kind)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return False
    return [c.strip().strip('"') for c in first.split(",")] == list(columns)


__all__ = ["normal", "real", "location", "is_under", "require_under", "plan_writes", "refuse_foreign",
           "csv_header_is"]
