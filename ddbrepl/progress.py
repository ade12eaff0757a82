"""Progress for long commands: a rich bar on a terminal, a plain line every few seconds otherwise.

Thread-safe: workers call ``advance`` from their threads. rich lives only here.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


class Reporter:
    """Counts items against an optional total; renders to ``stream`` (stderr by default)."""

    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None, every: float = 10.0,
                 enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self.started = time.monotonic()
        self._stream = stream or sys.stderr
        self._every = every
        self._enabled = enabled
        self._lock = threading.Lock()
        self._last_line = self.started
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Reporter:
        if self._enabled and self._stream.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=Console(file=self._stream), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, rate="0")
        return self

    def advance(self, n: int) -> None:
        with self._lock:
            self.count += n
            now = time.monotonic()
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=self.count, rate=f"{self.rate:,.0f}")
            elif self._enabled and now - self._last_line >= self._every:
                self._last_line = now
                total = f"/{self.total:,}" if self.total else ""
                print(f"{self.label}: {self.count:,}{total} items, {self.rate:,.0f}/s", file=self._stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
