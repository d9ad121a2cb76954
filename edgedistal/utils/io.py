"""Atomic file output and small JSON helpers: finished work is never half-written."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgedistal.errors import EdgedistalError

#: Below this much free space an output folder is reported full before any work starts.
MIN_FREE_BYTES = 1 << 20
#: Messages of writers that hide ENOSPC behind their own exception (torch.save's zip writer).
_DISK_FULL_HINTS = ("unexpected pos", "file write failed", "no space left")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def host_tag() -> str:
    """This host's name, safe inside a file name (no dots: they separate the name's parts)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", socket.gethostname()) or "host"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) holds nothing any more
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success.

    A crash or Ctrl-C mid-write leaves the previous file (or nothing) in place, never a torso;
    a kill -9 leaves a hidden temporary named after this host and pid, which
    :func:`remove_stale_temps` deletes once that process is gone. A full disk becomes an
    ``OSError(ENOSPC)`` naming ``path``, whatever the writer raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{host_tag()}-{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _disk_full_as_oserror(path):
            yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give them the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def _disk_full_as_oserror(path: Path) -> Iterator[None]:
    """Re-raise a disk-full failure of any writer as ``OSError(ENOSPC, ..., path)``."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is None:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise
    except RuntimeError as exc:
        text = str(exc).lower()
        if any(h in text for h in _DISK_FULL_HINTS) or _free_bytes(path.parent) < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return MIN_FREE_BYTES


_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def remove_stale_temps(folder: str | os.PathLike[str], max_age_s: float = 86400.0) -> list[Path]:
    """Delete hidden ``.tmp`` files in ``folder`` left by killed writers; return them.

    A temporary of this host whose writer pid is gone is stale at once; an untagged one (older
    versions) or another host's is stale after ``max_age_s``: a live writer may still own it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed, now, host = [], time.time(), host_tag()
    for p in folder.glob(".*.tmp"):
        m = _TEMP.match(p.name)
        try:
            if m and m["host"] == host:
                stale = not pid_alive(int(m["pid"]))
            else:
                stale = now - p.stat().st_mtime > max_age_s
            if stale:
                p.unlink()
                removed.append(p)
        except OSError:  # raced with its owner or another cleaner: leave it
            continue
    return removed


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder a new path would go into)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, target: Path, option: str) -> None:
    """Create and delete a file in ``folder``: the only test that sees read-only mounts,
    permissions (also for root) and a full disk the same way the real write will."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgedistal-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = {errno.EROFS: "read-only file system", errno.ENOSPC: f"no space left on {folder}"}.get(
            exc.errno or -1, exc.strerror or str(exc))
        raise EdgedistalError(f"{target}: cannot write {option} here ({reason})",
                              f"pass an {option} on a writable disk, or fix the permissions of {folder}") from exc
    if _free_bytes(folder) < MIN_FREE_BYTES:
        raise EdgedistalError(f"{target}: no space left on {folder} ({option})",
                              f"free disk space there, or pass an {option} on another disk")


def _check_parents(path: Path, option: str) -> Path:
    base = _nearest_existing(path.parent if path.parent != path else path)
    if not base.is_dir():
        raise EdgedistalError(f"{path}: {base} is a file, not a folder ({option})",
                              f"pass an {option} whose parent folders are folders, or move {base} away")
    return base


def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Fail now, with the fix, if ``path`` cannot become an output folder: it is a file, a
    parent is a file, or nothing can be written there. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EdgedistalError(f"{path}: exists and is a file; {option} must be a folder",
                              f"pass a new folder for {option}, or move that file away")
    base = path if path.is_dir() else _check_parents(path, option)
    _probe_writable(base, path, option)
    return path


def check_output_file(
    path: str | os.PathLike[str], option: str = "--out", replaceable: Callable[[Path], bool] | None = None
) -> Path:
    """Like :func:`check_output_dir` for a file; an existing file is refused unless
    ``replaceable(path)`` says it is an earlier output of the same kind (so re-running works
    but an unrelated file is never overwritten)."""
    path = Path(path)
    if path.is_dir():
        raise EdgedistalError(f"{path}: is a folder; {option} must be a file path",
                              f"pass a file name, e.g. {path / 'out'}")
    if path.exists() and replaceable is not None and not replaceable(path):
        raise EdgedistalError(f"{path}: exists and is not an edgedistal output; refusing to overwrite it",
                              f"pass a new {option}, or delete that file first")
    _probe_writable(_check_parents(path, option), path, option)
    return path


def looks_like_json(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts like a JSON document (an earlier output that may be replaced)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(256).lstrip()[:1] in (b"{", b"[")
    except OSError:
        return False


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _depth(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests no deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(doc, 0)]
    while stack:
        node, d = stack.pop()
        if d > limit:
            return False
        if isinstance(node, dict):
            stack += [(v, d + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, d + 1) for v in node]
    return True


def read_json_dict(path: str | os.PathLike[str], what: str, hint: str, max_depth: int = 32) -> dict[str, Any]:
    """A JSON object from ``path`` (a sidecar, a config): damaged text, another JSON type or
    absurd nesting is a one-line :class:`EdgedistalError` naming ``what``, with ``hint``."""
    try:
        doc = read_json(path)
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise EdgedistalError(f"{path}: damaged {what} ({exc.__class__.__name__})", hint) from exc
    if not isinstance(doc, dict):
        raise EdgedistalError(f"{path}: damaged {what} (a JSON {type(doc).__name__}, not an object)", hint)
    if not _depth(doc, max_depth):
        raise EdgedistalError(f"{path}: damaged {what} (nested deeper than {max_depth} levels)", hint)
    return doc
