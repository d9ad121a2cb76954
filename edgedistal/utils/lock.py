"""One writer per output folder: a lock file that names its holder (pid, host, start time).

Why: two runs writing into one ``--out`` both exit 0 and the last writer silently wins. The
lock is a small JSON file created atomically (hard link of a finished temp file, so a reader
never sees it half-written). A lock whose process is gone — same host, pid dead or reused by
another process — is stale and taken over; one held on another host is never broken
automatically (we cannot see that machine's processes), the message says how to remove it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import pid_alive

LOCK_NAME = ".edgedistal.lock"


def _proc_start(pid: int) -> str | None:
    """The kernel's start tick of ``pid`` (tells a reused pid from the original), if known."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_record(command: str) -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "command": command,
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "proc_start": _proc_start(pid)}


def _read(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _stale(holder: dict) -> bool:
    """True when the holder provably no longer runs (same host: pid dead, or pid reused)."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = int(holder.get("pid", -1))
    if pid <= 0 or not pid_alive(pid):
        return True
    recorded, now = holder.get("proc_start"), _proc_start(pid)
    return recorded is not None and now is not None and recorded != now


def _create(lock: Path, record: dict) -> bool:
    """Atomically create ``lock`` holding ``record``; False if it already exists."""
    tmp = lock.with_name(f"{lock.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    except OSError:  # file systems without hard links: exclusive create (content follows)
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return True
    finally:
        tmp.unlink(missing_ok=True)


def acquire(folder: str | os.PathLike[str], command: str) -> Path:
    """Take the lock of ``folder`` (created if needed) or raise naming who holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    record = _holder_record(command)
    for _ in range(3):  # a stale lock is removed, then the race for it is retried
        if _create(lock, record):
            return lock
        holder = _read(lock)
        if holder is None:
            continue
        if holder and _stale(holder):
            lock.unlink(missing_ok=True)
            continue
        who = (f"pid {holder.get('pid')} on {holder.get('host')} (edgedistal {holder.get('command')}, "
               f"started {holder.get('started')})") if holder else "an unreadable lock file"
        raise EdgedistalError(
            f"{folder}: in use by {who}",
            f"wait for that run to finish or pass another --out; if it is gone, delete {lock}",
        )
    raise EdgedistalError(f"{folder}: could not take the lock {lock}", f"delete {lock} and retry")


def release(lock: Path) -> None:
    """Remove ``lock`` if this process still holds it."""
    holder = _read(lock)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], command: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (released on errors and Ctrl-C too).

    The folders the lock had to create (``--out`` and any missing parent, e.g. the default
    ``runs/eval``'s ``runs/``) are removed again if the run left them empty (it failed before
    writing anything), so a refused run leaves no debris.
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    lock = acquire(folder, command)
    try:
        yield lock
    finally:
        release(lock)
        for made in created:
            try:
                made.rmdir()  # only succeeds when empty
            except OSError:
                break
