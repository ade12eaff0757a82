"""`tail`'s status: one live line on a terminal (rewritten in place), a plain line every ``every`` seconds otherwise.

Per table: records per second over the last interval, and lag = now − ApproximateCreationDateTime of the last
applied record (what a reader of PostgreSQL waits for a change to show up).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from ddbrepl.runners.shard_worker import Tally


class StatusLine:
    def __init__(self, *, stream: TextIO | None = None, enabled: bool = True, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self._last = time.monotonic()
        self._counts: dict[str, int] = {}
        self._width = 0

    def render(self, tallies: Mapping[str, Tally], shards: int, now: datetime | None = None) -> str:
        wall = now or datetime.now(UTC)
        elapsed = max(time.monotonic() - self._last, 1e-6)
        parts = []
        for table, t in sorted(tallies.items()):
            rate = (t.records - self._counts.get(table, 0)) / elapsed
            lag = f"{(wall - t.last_event_at).total_seconds():.1f}s" if t.last_event_at else "-"
            parts.append(f"{table}: {t.records:,} records, {rate:,.0f}/s, lag {lag}")
        return f"tail [{shards} shard(s)] " + " | ".join(parts)

    def maybe_print(self, tallies: Mapping[str, Tally], shards: int) -> None:
        """Print when due; counters for the rate are taken since the previous line."""
        if not self.enabled or time.monotonic() - self._last < self.every:
            return
        line = self.render(tallies, shards)
        self._last = time.monotonic()
        self._counts = {table: t.records for table, t in tallies.items()}
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
