"""What the scan and export backfills share: the final summary, the worker pool, a bounded prefetch thread, GC
tuning for the hot loop, and finishing a run."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from ddbrepl.errors import DdbreplError, Fatal, Retriable
from ddbrepl.records import ApplyStats
from ddbrepl.runners.common import TablePlan, open_state
from ddbrepl.settings import Settings
from ddbrepl.state import backfills, tombstones

log = logging.getLogger(__name__)
T = TypeVar("T")

GC_THRESHOLD = (100_000, 50, 100)
"""Young-generation threshold while loading: parsing allocates millions of small containers that are freed by
reference counting, and at the default (700) the cyclic collector alone doubles the CPU cost of a load."""


@dataclass
class Summary:
    """What a backfill did, for the final report."""

    table: str
    items: int = 0
    seconds: float = 0.0
    stats: ApplyStats = field(default_factory=ApplyStats)
    segments: int = 0
    finished: bool = False
    already_done: bool = False
    point_in_time: datetime | None = None
    unit: str = "segment"
    """What one unit of work is: a scan ``segment`` or an export ``file``."""
    source: str | None = None
    """The export loaded (its s3:// folder), None for a scan."""
    failed: tuple[str, ...] = ()
    """Export files that could not be read (each with its reason); the run stays unfinished."""

    def render(self) -> str:
        if self.already_done:
            return (f"backfill of {self.table} already finished ({self.items:,} items, point in time "
                    f"{self.point_in_time:%Y-%m-%d %H:%M:%S}Z); use --restart to load it again")
        rate = self.items / self.seconds if self.seconds else 0.0
        if self.finished:
            state = "finished"
        elif self.failed:
            state = f"stopped with {len(self.failed)} failed {self.unit}(s) (re-run to retry only them)"
        else:
            state = f"stopped (other processes still hold {self.unit}s; re-run to resume)"
        text = (f"backfill of {self.table} {state}: {self.items:,} items in {self.seconds:.1f}s ({rate:,.0f}/s), "
                f"{self.stats.upserts:,} rows upserted, {self.stats.deletes:,} deleted, {self.stats.skipped:,} "
                f"kept (newer stream rows or tombstones), {self.stats.rejected:,} dead letters, "
                f"{self.segments} {self.unit}(s)")
        if self.source:
            text += f" from {self.source}"
        if self.point_in_time is not None and self.finished:
            text += f"; point in time {self.point_in_time:%Y-%m-%d %H:%M:%S}Z"
        return text + "".join(f"\nfailed: {reason}" for reason in self.failed)


def with_resume(conn: psycopg.Connection[Any], source_table: str, seg: backfills.Segment, label: str,
                load: Callable[[dict[str, Any] | None], None], *, attempts: int = 8) -> None:
    """Run ``load(resume_key)`` for one claimed unit; after a Retriable failure (throttling, a lost connection)
    back off and run it again from the unit's last committed resume key."""
    resume = seg.resume_key
    for attempt in range(1, attempts + 1):
        try:
            load(resume)
            return
        except Retriable as exc:
            if attempt == attempts:
                raise
            delay = min(0.5 * 2**attempt, 30.0)
            log.warning("%s: %s; resuming in %.1fs", label, exc.message, delay)
            time.sleep(delay)
            state = [s for s in backfills.segments(conn, source_table) if s.segment == seg.segment]
            resume = state[0].resume_key if state else resume


def run_workers(n: int, work: Callable[[], int], name: str = "backfill") -> tuple[int, list[BaseException]]:
    """Run ``work`` in ``n`` threads; returns the sum of their results and the exceptions they raised."""
    with ThreadPoolExecutor(n, thread_name_prefix=name) as pool:
        futures = [pool.submit(work) for _ in range(n)]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
    return sum(f.result() for f in futures if f.exception() is None), errors


def raise_first(table: str, errors: list[BaseException]) -> None:
    """Re-raise the first worker error as a DdbreplError (the CLI prints it and exits 1)."""
    if not errors:
        return
    first = errors[0]
    if isinstance(first, DdbreplError):
        raise first
    raise Fatal(f"backfill of {table} failed: {first}", "re-run the same command to resume") from first


def prefetch(items: Iterable[T], stop: threading.Event, depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Read ``items`` in a thread, at most ``depth`` ahead of the consumer; its errors re-raise in the consumer."""
    q: queue.Queue[tuple[T] | BaseException | None] = queue.Queue(maxsize=depth)

    def reader() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item,), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it in its own thread
            q.put(exc)

    thread = threading.Thread(target=reader, name=name, daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield got[0]
    finally:
        stop.set()


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Freeze what setup allocated and raise the young-generation threshold for the duration of a load.

    Both are process-wide, so they are restored on the way out (a library caller keeps its own settings).
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def finish(settings: Settings, plan: TablePlan) -> bool:
    """Mark the run finished if every unit is done (clearing the tombstones it needed); True when finished."""
    with open_state(settings) as conn, conn.transaction():
        if backfills.finish(conn, plan.source_table):
            tombstones.clear(conn, plan.target_tables)
        final = backfills.get(conn, plan.source_table)
        return final is not None and final.finished_at is not None
