"""Progress bars (rich) that stay quiet when stderr is not a terminal or in tests: the one
helper every stage uses (:func:`track` over an iterable, :class:`Bar` for loops that report
their own position)."""

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


class Bar:
    """A bar with a label, ``completed/total``, elapsed (and remaining) time and a free-text
    field. ``pause``/``resume``: rich shows one live display, so an outer bar steps aside while
    an inner one (training inside a distillation round) runs."""

    def __init__(self, label: str, total: int, on: bool = True, *, eta: bool = False):
        self.progress = None
        self.running = False
        if on and enabled():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
            if eta:
                columns.append(TimeRemainingColumn())
            self.progress = Progress(*columns, TextColumn("{task.fields[info]}"), transient=True)
            self.task = self.progress.add_task(label, total=total, info="")
            self.resume()

    def update(self, completed: int, info: str | None = None) -> None:
        if self.progress is not None:
            fields = {} if info is None else {"info": info}
            self.progress.update(self.task, completed=completed, **fields)

    def pause(self) -> None:
        if self.progress is not None and self.running:
            self.progress.stop()
            self.running = False

    def resume(self) -> None:
        if self.progress is not None and not self.running:
            self.progress.start()
            self.running = True

    def close(self) -> None:
        self.pause()
