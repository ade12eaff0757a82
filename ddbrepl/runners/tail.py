"""`ddbrepl tail`: follow the streams of the mapped tables and apply every change exactly once.

One coordinator (this module, the calling thread) and a bounded pool of shard turns (runners.shard_worker):

- every ``discover_seconds`` (and whenever a shard finished, or before declaring idle) DescribeStream lists the
  shards; new ones get a checkpoint row and a free lease;
- every ``balance_seconds`` a lease round (state.leases.balance) renews what this worker holds and takes its share
  of the ready shards (parent finished before child, across workers); a shard whose lease went elsewhere is dropped
  after its turn in flight;
- every held shard whose reader is due gets a turn on the pool: read, apply with the checkpoint in one
  transaction, repeat for up to a second.

SIGINT/SIGTERM: turns finish the batch in flight and commit, leases are given back, exit 0. ``until_idle``: stop
once every shard this worker can hold is caught up (closed shards read to their end, open shards empty on
repeated reads) and a fresh listing shows nothing new. A lost database is retried with backoff, by the turns and by
the coordinator alike; a Fatal error (data loss, a gap in the stream) stops everything and is raised.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import psycopg

from ddbrepl import metrics
from ddbrepl.errors import DdbreplError, Fatal, Retriable
from ddbrepl.records import Shard
from ddbrepl.runners.common import TablePlan, aws_config, open_state, table_plans, worker_id
from ddbrepl.runners.shard_worker import Connections, Feed, Outcome, ShardTask, Tally
from ddbrepl.runners.tail_feeds import StartFrom, prepare
from ddbrepl.runners.tail_session import ControlSession
from ddbrepl.runners.tail_status import StatusLine
from ddbrepl.settings import Settings
from ddbrepl.sources import shards as lineage
from ddbrepl.sources.aws import dynamodb_client, session, streams_client
from ddbrepl.sources.reader import ShardReader
from ddbrepl.sources.scan import describe_table
from ddbrepl.sources.stream import describe_stream
from ddbrepl.state import checkpoints, leases

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logging.getLogger(__name__)
UNTIL_IDLE_READS: dict[str, Any] = {"idle_min": 0.05, "idle_max": 0.25}
"""``--until-idle`` is short-lived: confirm an open shard's tip with quicker empty reads than a long-running tail."""


@dataclass
class Summary:
    """What one `tail` run did, per table."""

    worker: str
    tallies: dict[str, Tally] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = "stopped"

    @property
    def records(self) -> int:
        return sum(t.records for t in self.tallies.values())

    def render(self) -> str:
        lines = [f"tail {self.reason} after {self.seconds:.1f}s: {self.records:,} stream records"]
        for table, t in sorted(self.tallies.items()):
            s = t.stats
            lines.append(f"  {table}: {t.records:,} records ({t.skipped:,} before the hand-off point), "
                         f"{s.upserts:,} upserts, {s.deletes:,} deletes, {s.rejected:,} dead letters")
        return "\n".join(lines)


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (only the main thread may install handlers; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batches in flight", signum)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Coordinator:
    def __init__(self, settings: Settings, feeds: Sequence[Feed], dynamodb: DynamoDBClient,
                 streams: DynamoDBStreamsClient, *, worker: str, lease_seconds: float,
                 threads: int, until_idle: bool, stop: threading.Event, status: StatusLine,
                 discover_seconds: float, reader_options: dict[str, Any], metrics: metrics.Metrics) -> None:
        self.url = settings.require_database()
        self.metrics = metrics
        self.streams = streams
        self.dynamodb = dynamodb
        self.feeds = {f.arn: f for f in feeds}
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.balance_seconds = min(1.0, lease_seconds / 3)
        self.discover_seconds = discover_seconds
        self.until_idle = until_idle
        self.stop = stop
        self.status = status
        self.reader_options = reader_options
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tail")
        self.read_ahead = ThreadPoolExecutor(threads, thread_name_prefix="tail-read")
        self.connections = Connections(self.url)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.tallies = {f.plan.source_table: Tally() for f in feeds}
        self.listed: dict[str, dict[str, Shard]] = {f.arn: {} for f in feeds}
        self.tasks: dict[tuple[str, str], ShardTask] = {}
        self.running: dict[tuple[str, str], Future[Outcome]] = {}
        self.session = ControlSession(self.url, self.worker)
        self.last_discover = -1e9
        self.last_balance = -1e9
        self.discover_now = True
        self.idle_checks = 0
        self.error: BaseException | None = None
        self.replaced: set[str] = set()
        self.others: dict[tuple[str, str], tuple[str, datetime]] = {}
        """Leases of other workers as first seen by the idle check: (owner, expires_at)."""

    def _discover(self) -> int:
        """List every followed stream; register new shards. Returns how many shards were new."""
        conn = self.session.get()
        if conn is None:
            return 0
        new = 0
        for arn, feed in self.feeds.items():
            try:
                self._check_stream(feed)
                info = describe_stream(self.streams, arn)
            except Retriable as exc:
                log.warning("listing the stream of %s failed (%s); retrying next round", feed.plan.source_table,
                            exc.message)
                return 0
            except psycopg.Error as exc:
                self.session.failed(exc)
                return 0
            merged = lineage.merge(self.listed[arn].values(), info.shards)
            self.listed[arn] = {s.id: s for s in merged}
            try:
                with conn.transaction():
                    new += checkpoints.register(conn, feed.plan.source_table, arn, merged)
            except psycopg.Error as exc:
                self.session.failed(exc)
                return 0
        self.last_discover = time.monotonic()
        self.discover_now = False
        return new

    def _check_stream(self, feed: Feed) -> None:
        """A table whose stream was disabled or replaced: read what the old stream holds to its end (its shards
        stay readable for 24 h), then stop with the fix, since the changes in between were never captured."""
        info = describe_table(self.dynamodb, feed.plan.source_table)
        if info.stream_enabled and info.stream_arn == feed.arn:
            return
        if feed.arn not in self.replaced:
            self.replaced.add(feed.arn)
            log.error("the stream of %s was disabled or replaced; finishing the old stream's shards",
                      feed.plan.source_table)
        conn = self.session.get()
        reading = [t for k, t in self.tasks.items() if k[0] == feed.arn and not t.lost]
        if conn is not None and all(t.reader.caught_up for t in reading) and leases.unclaimed(conn, feed.arn) == 0:
            raise Fatal(f"the stream of {feed.plan.source_table!r} was disabled or replaced (now "
                        f"{info.stream_arn if info.stream_enabled else 'none'}); everything the old stream held is "
                        "applied, but changes made since were not captured",
                        hint=f"run `ddbrepl backfill --table {feed.plan.source_table} --restart`, then "
                             "`ddbrepl tail --accept-new-stream`")

    def _balance(self) -> None:
        conn = self.session.get()
        if conn is None:
            return
        try:
            self.session.announce()
            with conn.transaction():
                leases.heartbeat(conn, self.worker)
                held = {arn: leases.balance(conn, arn, self.worker, self.lease_seconds) for arn in self.feeds}
        except psycopg.Error as exc:
            self.session.failed(exc)
            return
        self.last_balance = time.monotonic()
        for arn, epochs in held.items():
            for shard_id, epoch in epochs.items():
                key = (arn, shard_id)
                task = self.tasks.get(key)
                if task is not None and task.epoch != epoch:
                    task.lost = True  # re-taken under a new epoch: start over from the checkpoint
                if (task is None or task.lost) and key not in self.running:
                    self.tasks[key] = self._task(self.feeds[arn], shard_id, epoch)
        for key, task in self.tasks.items():
            if key[1] not in held.get(key[0], {}) and not task.lost and not task.finished:
                log.info("shard %s moved to another worker; %s drops it", key[1], self.worker)
                task.lost = True

    def _task(self, feed: Feed, shard_id: str, epoch: int) -> ShardTask:
        shard = self.listed[feed.arn].get(shard_id) or Shard(shard_id, None, 0)
        reader = ShardReader(self.streams, feed.arn, shard, **self.reader_options)
        log.info("worker %s took shard %s of %s (epoch %d)", self.worker, shard_id, feed.plan.source_table, epoch)
        return ShardTask(feed, reader, epoch, worker=self.worker, lease_seconds=self.lease_seconds,
                         connections=self.connections, dynamodb=self.dynamodb,
                         tally=self.tallies[feed.plan.source_table], lock=self.lock, stop=self.stop,
                         read_ahead=self.read_ahead, metrics=self.metrics)

    def _collect(self) -> None:
        for key, future in list(self.running.items()):
            if not future.done():
                continue
            del self.running[key]
            exc = future.exception()
            if exc is not None:
                self.error = self.error or exc
                self.stop.set()
                continue
            if future.result() == "finished":
                self.discover_now = True
                self.last_balance = -1e9  # children may be ready now
        for key in [k for k, t in self.tasks.items() if (t.finished or t.lost) and k not in self.running]:
            del self.tasks[key]

    def _schedule(self) -> float:
        """Start a turn for every due shard; returns seconds until the next one is due."""
        now = time.monotonic()
        soonest = 0.25
        for key, task in self.tasks.items():
            if key in self.running or task.finished or task.lost:
                continue
            wait = task.reader.due_at - now
            if wait <= 0:
                future = self.pool.submit(task.turn)
                future.add_done_callback(lambda _f: self.wake.set())
                self.running[key] = future
            else:
                soonest = min(soonest, wait)
        return soonest

    def _idle(self) -> bool:
        """Nothing running, every held shard caught up, and — confirmed after a fresh listing and lease round —
        no ready shard left without a live owner."""
        if self.running or any(not t.reader.caught_up for t in self.tasks.values() if not t.lost):
            self.idle_checks = 0
            return False
        if self.idle_checks == 0:
            self.idle_checks = 1
            self.others = {}
            self.discover_now = True
            self.last_balance = -1e9
            return False
        return self._nothing_left()

    def _nothing_left(self) -> bool:
        """No ready shard without a live owner, and every lease held by another worker renewed since the first
        idle check (a live lease may belong to a worker that was just killed: wait for its renewal or expiry)."""
        conn = self.session.get()
        if conn is None:
            return False
        try:
            if sum(leases.unclaimed(conn, arn) for arn in self.feeds):
                return False
            others = {(arn, shard): held for arn in self.feeds
                      for shard, held in leases.held_by_others(conn, arn, self.worker).items()}
        except psycopg.Error as exc:
            self.session.failed(exc)
            return False
        for key, (owner, expires) in others.items():
            seen = self.others.setdefault(key, (owner, expires))
            if seen[0] == owner and seen[1] >= expires:
                return False
        return True

    def run(self) -> str:
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self.discover_now or now - self.last_discover >= self.discover_seconds:
                    self._discover()
                if now - self.last_balance >= self.balance_seconds:
                    self._balance()
                self._collect()
                wait = self._schedule()
                self.status.maybe_print(self.tallies, len(self.tasks))
                if self.until_idle and self._idle():
                    return "idle"
                self.wake.wait(min(wait, 0.05 if self.until_idle else wait))
                self.wake.clear()
            return "stopped"
        finally:
            self.stop.set()
            self.pool.shutdown(wait=True)
            self.read_ahead.shutdown(wait=True, cancel_futures=True)
            self._collect()
            self.session.leave()
            self.connections.close_all()
            self.status.close()


def _prepare_all(settings: Settings, dynamodb: DynamoDBClient, plans: Sequence[TablePlan], *, start: StartFrom,
                 accept_new_stream: bool, attempts: int = 6) -> list[Feed]:
    """Resolve every table's stream; a database that goes away meanwhile is retried with backoff."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with open_state(settings) as conn, conn.transaction():
                return [prepare(conn, dynamodb, p, start=start, accept_new_stream=accept_new_stream) for p in plans]
        except (Retriable, psycopg.OperationalError) as exc:
            if attempt == attempts:
                raise
            log.warning("preparing the tail failed (%s); retrying in %.1fs", str(exc).splitlines()[0], delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def tail(settings: Settings, tables: Sequence[str] = (), *, until_idle: bool = False,
         start: StartFrom = "trim-horizon", worker: str | None = None, lease_seconds: float = 30.0,
         threads: int = 8, accept_new_stream: bool = False, progress: bool = True,
         stop: threading.Event | None = None, discover_seconds: float = 10.0,
         reader_options: dict[str, Any] | None = None, metrics_port: int | None = None) -> Summary:
    """Follow the streams of the mapped tables (or ``tables``) until stopped, or until idle with ``until_idle``.
    With ``metrics_port``, serve Prometheus metrics there while running."""
    plans = table_plans(settings, tables)
    if not plans:
        raise Fatal("no mapping to tail", hint="check --mappings and --table")
    stop = stop or threading.Event()
    summary = Summary(worker or worker_id())
    started = time.monotonic()
    config = aws_config(settings)
    boto = session(config)  # one session: botocore loads each service model once
    dynamodb = dynamodb_client(config, boto)
    feeds = _prepare_all(settings, dynamodb, plans, start=start, accept_new_stream=accept_new_stream)
    status = StatusLine(enabled=progress)
    exporter = metrics.serve(metrics_port) if metrics_port is not None else None
    coordinator = _Coordinator(settings, feeds, dynamodb, streams_client(config, boto), worker=summary.worker,
                               lease_seconds=lease_seconds,
                               threads=threads, until_idle=until_idle, stop=stop, status=status,
                               discover_seconds=discover_seconds, reader_options=reader_options or (
                                   UNTIL_IDLE_READS if until_idle else {}),
                               metrics=exporter or metrics.NULL)
    try:
        with _signals(stop):
            summary.reason = coordinator.run()
    finally:
        if exporter is not None:
            exporter.close()
    summary.tallies = coordinator.tallies
    summary.seconds = time.monotonic() - started
    if coordinator.error is not None:
        if isinstance(coordinator.error, DdbreplError):
            raise coordinator.error
        raise Fatal(f"tail failed: {type(coordinator.error).__name__}: {coordinator.error}") from coordinator.error
    return summary
