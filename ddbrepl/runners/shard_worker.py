"""One leased shard of a followed table: read a batch, apply it with its checkpoint in ONE transaction, repeat.

The tail coordinator runs a :class:`ShardTask`'s :meth:`~ShardTask.turn` on a bounded thread pool, never two turns
of one shard at once. A turn reads and commits batches for up to ``slice_seconds`` and returns, so a few threads
serve many shards fairly; between turns the shard's reader decides when it is due again (idle and throttle backoff).
While a batch is applied, the next one is already being read (``read_ahead``): GetRecords and the commit overlap.

Exactly once: a batch's rows and its checkpoint commit together, fenced by the lease epoch. When a commit's
outcome is unknown (the connection broke), the task re-reads its checkpoint before reading on (``resync``), so a
batch is never applied twice and never skipped. Each pool thread keeps its own connection (:class:`Connections`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from ddbrepl.db import connect
from ddbrepl.errors import Fatal, LeaseLost, Retriable
from ddbrepl.metrics import NULL as NULL_METRICS
from ddbrepl.metrics import Metrics
from ddbrepl.records import ApplyStats, StreamBatch
from ddbrepl.runners.common import TablePlan, apply_changes
from ddbrepl.sources.items import current_items
from ddbrepl.sources.reader import ShardReader
from ddbrepl.state import checkpoints

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

Outcome = Literal["more", "idle", "finished", "lost", "retry"]


@dataclass(frozen=True, slots=True)
class Feed:
    """One followed table: its mappings, its stream, and how its records are filtered and completed."""

    plan: TablePlan
    arn: str
    view_type: str
    key_names: tuple[str, ...]
    skip_before: datetime | None
    """Records created before this are skipped (already in the backfill, or before ``--from latest``)."""
    fetch_items: bool
    """KEYS_ONLY / OLD_IMAGE stream and a mapping that needs more than the keys: read items with BatchGetItem."""


class Connections:
    """One PostgreSQL connection per pool thread, opened on first use and dropped when it breaks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def get(self) -> tuple[psycopg.Connection[Any], bool]:
        """The thread's connection and whether it was just opened (then a caller re-reads its state)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn, False
        conn = connect(self.url, autocommit=True)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn, True

    def drop(self) -> None:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


@dataclass
class Tally:
    """What the tasks of one table did; updated under the coordinator's lock."""

    records: int = 0
    skipped: int = 0
    stats: ApplyStats = dataclasses.field(default_factory=ApplyStats)
    last_event_at: datetime | None = None


class ShardTask:
    """The state of one shard this worker holds a lease on (see the module docstring)."""

    def __init__(self, feed: Feed, reader: ShardReader, epoch: int, *, worker: str, lease_seconds: float,
                 connections: Connections, dynamodb: DynamoDBClient, tally: Tally, lock: threading.Lock,
                 stop: threading.Event, read_ahead: Executor | None = None, slice_seconds: float = 1.0,
                 metrics: Metrics = NULL_METRICS) -> None:
        self.feed = feed
        self.reader = reader
        self.epoch = epoch
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.connections = connections
        self.dynamodb = dynamodb
        self.tally = tally
        self.lock = lock
        self.stop = stop
        self.slice_seconds = slice_seconds
        self.read_ahead = read_ahead
        self.metrics = metrics
        self._next: Future[StreamBatch] | None = None
        """The batch after the one being applied, read while it is applied (reads and commits overlap)."""
        self.resync = True
        """Re-read the checkpoint before the next read: at start, and after a commit of unknown outcome."""
        self.finished = False
        self.lost = False
        self.retries = 0

    @property
    def shard_id(self) -> str:
        return self.reader.shard.id

    def turn(self) -> Outcome:
        """Read and commit batches for up to ``slice_seconds``; never raises Retriable or LeaseLost."""
        try:
            return self._turn()
        except LeaseLost as exc:
            log.info("shard %s: %s", self.shard_id, exc.message)
            self.lost = True
            self.metrics.forget_shard(self.feed.plan.source_table, self.shard_id)
            return "lost"
        except (Retriable, psycopg.OperationalError) as exc:
            self.metrics.retry(self.feed.plan.source_table)
            self.metrics.error(self.feed.plan.source_table, type(exc).__name__)
            self.retries += 1
            delay = min(15.0, 0.25 * 2 ** min(self.retries, 8))
            log.warning("shard %s: %s; retrying in %.1fs", self.shard_id, str(exc).splitlines()[0], delay)
            self.reader.due_at = max(self.reader.due_at, time.monotonic() + delay)
            return "retry"

    def _turn(self) -> Outcome:
        conn, fresh = self.connections.get()
        if fresh or self.resync:
            self._drop_read_ahead()
            cp = checkpoints.get(conn, self.feed.arn, self.shard_id)
            if cp is None:
                raise Fatal(f"no checkpoint row for shard {self.shard_id} of {self.feed.arn}")
            self.reader.reset(cp.sequence)
            self.resync = False
            if cp.finished:
                self.finished = True
                return "finished"
        deadline = time.monotonic() + self.slice_seconds
        while not self.stop.is_set():
            batch = self._read()
            if batch.changes and batch.next_iterator is not None and self.read_ahead is not None:
                self._next = self.read_ahead.submit(self.reader.next_batch, wait=False)
            if batch.changes or batch.next_iterator is None:
                self._commit(conn, batch)
            self.retries = 0
            if batch.next_iterator is None:
                self.finished = True
                self.metrics.forget_shard(self.feed.plan.source_table, self.shard_id)
                return "finished"
            if not batch.changes and self.reader.due_at > time.monotonic():
                return "idle"
            if time.monotonic() >= deadline:
                break
        return "more"

    def _read(self) -> StreamBatch:
        pending, self._next = self._next, None
        return pending.result() if pending is not None else self.reader.next_batch(wait=False)

    def _drop_read_ahead(self) -> None:
        """Forget a batch read ahead (the reader is about to be reset to the committed checkpoint)."""
        pending, self._next = self._next, None
        if pending is not None:
            wait([pending])

    def _commit(self, conn: psycopg.Connection[Any], batch: StreamBatch) -> None:
        changes = batch.changes
        cut = self.feed.skip_before
        wanted = [c for c in changes if cut is None or c.approx_time is None or c.approx_time >= cut]
        if self.feed.fetch_items and wanted:
            wanted = current_items(self.dynamodb, self.feed.plan.source_table, wanted, self.feed.key_names)
        last = changes[-1] if changes else None
        try:
            with conn.transaction():
                stats = (apply_changes(conn, self.feed.plan, wanted, origin="stream") if wanted
                         else ApplyStats())
                checkpoints.advance(
                    conn, self.feed.arn, self.shard_id, sequence=last.sequence if last else None,
                    records=len(changes), last_event_at=last.approx_time if last else None,
                    finished=batch.next_iterator is None, owner=self.worker, epoch=self.epoch,
                    lease_seconds=self.lease_seconds)
        except LeaseLost:
            self._drop_read_ahead()
            raise
        except psycopg.Error as exc:
            if conn.closed or conn.broken or isinstance(exc, psycopg.OperationalError):
                self.resync = True  # the commit may or may not have happened: the checkpoint will tell
                self.connections.drop()
                raise Retriable(f"database connection lost while applying shard {self.shard_id}: {exc}") from exc
            raise
        except BaseException:
            self.resync = True
            raise
        with self.lock:
            t = self.tally
            t.records += len(changes)
            t.skipped += len(changes) - len(wanted)
            t.stats += stats
            if last is not None and last.approx_time is not None:
                t.last_event_at = last.approx_time
        table = self.feed.plan.source_table
        last_at = last.approx_time if last is not None else None
        self.metrics.batch(table, self.shard_id, len(changes), stats, last_at)
        lag = (datetime.now(UTC) - last_at).total_seconds() if last_at is not None else None
        log.debug("shard %s: %d records, %d upserts, %d deletes, %d dead letters", self.shard_id, len(changes),
                  stats.upserts, stats.deletes, stats.rejected,
                  extra={"table": table, "shard": self.shard_id, "records": len(changes), "lag_s": lag})
