"""`ddbrepl backfill --table T`: load a table from a parallel scan, resumable, shared by several processes.

Each worker thread owns one PostgreSQL connection (autocommit between transactions, so the advisory lock that
claims a segment is held by its session) and loads one segment at a time: a prefetch thread reads the next page
while the worker converts and COPYs the current one, so reading, converting and loading overlap and memory stays
bounded (workers x 2 pages). Every page commits with the segment's new resume key: a restart repeats at most the
page that was in flight. Backfill rows carry ``_ddb_seq`` NULL and never overwrite a stream-written row nor a
tombstoned key, so `tail` may run at the same time.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg

from ddbrepl.db import connect
from ddbrepl.errors import Fatal
from ddbrepl.progress import Reporter
from ddbrepl.records import ApplyStats, RawChange
from ddbrepl.runners.backfill_common import Summary, finish, prefetch, raise_first, run_workers, with_resume
from ddbrepl.runners.common import TablePlan, apply_changes, aws_config, one_table, open_state, worker_id
from ddbrepl.settings import Settings
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.scan import RateLimiter, TableInfo, describe_table, scan_segment, suggest_segments
from ddbrepl.state import backfills

log = logging.getLogger(__name__)
PREFETCH_PAGES = 2
MAX_RETRIES = 8


class _Loader:
    def __init__(self, settings: Settings, plan: TablePlan, info: TableInfo, total: int, reporter: Reporter,
                 limiter: RateLimiter | None, page_limit: int | None) -> None:
        self.settings = settings
        self.plan = plan
        self.info = info
        self.total = total
        self.reporter = reporter
        self.limiter = limiter
        self.page_limit = page_limit
        self.client = dynamodb_client(aws_config(settings))
        self.lock = threading.Lock()
        self.stats = ApplyStats()
        self.worker = worker_id()

    def run_worker(self) -> int:
        """Load segments until none is left to claim; returns how many this worker finished."""
        finished = 0
        with connect(self.settings.require_database(), autocommit=True) as conn:
            while (seg := backfills.claim_next(conn, self.plan.source_table, self.worker)) is not None:
                try:
                    self._load_segment(conn, seg)
                    finished += 1
                finally:
                    if not conn.closed:
                        backfills.release(conn, self.plan.source_table, seg.segment)
        return finished

    def _load_segment(self, conn: psycopg.Connection[Any], seg: backfills.Segment) -> None:
        with_resume(conn, self.plan.source_table, seg, f"segment {seg.segment}",
                    lambda resume: self._pages(conn, seg.segment, resume), attempts=MAX_RETRIES)

    def _pages(self, conn: psycopg.Connection[Any], segment: int, resume: dict[str, Any] | None) -> None:
        keys = self.info.key_names
        stop = threading.Event()
        pages = scan_segment(self.client, self.info.name, segment, self.total, resume, limit=self.page_limit,
                             rate_limiter=self.limiter)
        for page in prefetch(pages, stop, PREFETCH_PAGES, name="scan-prefetch"):
            changes = [RawChange("INSERT", {k: item[k] for k in keys if k in item}, item) for item in page.items]
            with conn.transaction():
                stats = apply_changes(conn, self.plan, changes, origin="scan")
                backfills.advance(conn, self.plan.source_table, segment, resume_key=page.resume_from,
                                  items=len(changes), done=page.resume_from is None)
            with self.lock:
                self.stats += stats
            self.reporter.advance(len(changes))


def backfill(settings: Settings, table: str, *, segments: int | None = None, workers: int | None = None,
             restart: bool = False, max_rcu: float | None = None, page_limit: int | None = None,
             progress: bool = True) -> Summary:
    """Load ``table`` into every mapping that reads it, from a parallel scan; resume an unfinished run."""
    plan = one_table(settings, table)
    summary = Summary(table)
    with open_state(settings) as conn:
        info = describe_table(dynamodb_client(aws_config(settings)), table)
        run = backfills.get(conn, table)
        if run is not None and restart:
            with conn.transaction():
                backfills.reset(conn, table)
            run = None
        if run is not None and run.finished_at is not None:
            summary.already_done, summary.items, summary.point_in_time = True, run.items, run.point_in_time
            return summary
        if run is not None and run.kind != "scan":
            raise Fatal(f"an unfinished {run.kind} backfill of {table!r} exists",
                        "finish it with the same --source, or pass --restart")
        if run is None:
            total = segments or suggest_segments(info.size_bytes, info.item_count)
            with conn.transaction():
                run = backfills.start(conn, table, kind="scan", source=None, point_in_time=datetime.now(UTC),
                                      total_items=info.item_count, segments=[None] * total)
            log.info("backfill of %s started with %d segments", table, total)
        elif segments and segments != run.total_segments:
            log.warning("resuming with the run's %d segments, not --segments %d (resume keys belong to their "
                        "segmentation)", run.total_segments, segments)
    limiter = RateLimiter(max_rcu) if max_rcu else None
    n_workers = max(1, min(run.total_segments, workers or 8))
    with Reporter(f"backfill {table}", info.item_count or None, enabled=progress) as reporter:
        loader = _Loader(settings, plan, info, run.total_segments, reporter, limiter, page_limit)
        summary.segments, errors = run_workers(n_workers, loader.run_worker)
        summary.items, summary.seconds, summary.stats = reporter.count, reporter.elapsed, loader.stats
    raise_first(table, errors)
    summary.finished = finish(settings, plan)
    return summary
