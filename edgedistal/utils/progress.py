"""Progress bars (rich) that stay quiet when stdout is not a terminal or in tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    if os.environ.get("EDGEDISTAL_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def track(items: Iterable[T], total: int | None = None, description: str = "working") -> Iterator[T]:
    """Iterate ``items`` with a rich progress bar on a terminal, plainly otherwise."""
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, total=total, description=description, transient=True)
