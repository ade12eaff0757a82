"""Load the data files of one DynamoDB export, several at once, resumable inside a file.

Each worker thread owns one PostgreSQL connection (autocommit between transactions, so the advisory lock that
claims a file is held by its session) and loads one file at a time: a prefetch thread reads, decompresses and
parses the next chunk while the worker converts and COPYs the current one. Every chunk commits in ONE transaction
with the file's resume position ``{"chunk": n, "chunk_size": s}`` (the n-th chunk of s changes is the last one
applied), and the file's last chunk commits with ``done``; the source runs every check of a file (gzip, lines,
item count) before yielding its last chunk, so a bad file is never recorded as done. After a kill the file is read
again from its start and the first n chunks are skipped unapplied: parsing is cheap next to applying, and the
alternative, one transaction per file, would hold row locks on up to millions of rows (blocking a concurrent
`tail`) and lose a whole file's work on a kill.

A file that cannot be read (:class:`SourceError`: corrupt or truncated gzip, a bad line, a count that differs
from the manifest) is recorded in :attr:`FileLoader.failed` with its reason and marked failed in
``ddbrepl.backfill_segments``, so no loader of this run, in any process, claims it again; the other files go
on; its committed chunks stay, and a re-run (which clears the marks) resumes it where it stopped.

Incremental exports: a key may change several times in the window, and AWS does not promise that one key's
changes sit in one file, nor in time order. :func:`latest_changes` reads every file once first and keeps, per
key, the position of its newest change (``WriteTimestampMicros``; ties go to the later file, then the later
line). The load then applies only those winners, so every key receives exactly one change — its final state in
the window — and files may be loaded in any order, in parallel, and again after a kill, with the same result.
The price is a second read of the export and a dict of one entry per changed key (~200 bytes each).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from ddbrepl.db import connect
from ddbrepl.errors import SourceError
from ddbrepl.records import ApplyStats, RawChange
from ddbrepl.runners.backfill_common import prefetch, with_resume
from ddbrepl.runners.common import TablePlan, apply_changes, aws_config, worker_id
from ddbrepl.settings import Settings
from ddbrepl.sources.aws import s3_client
from ddbrepl.sources.s3export import DataFile, ExportInfo, iter_file
from ddbrepl.state import backfills

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRIES = 6
PREFETCH_CHUNKS = 1
NEVER = datetime.min.replace(tzinfo=UTC)

KeyId = tuple[tuple[str, Any], ...]
Stamp = tuple[datetime, int, int]
"""(WriteTimestampMicros as a datetime, file index, position in the file): the newest change of a key wins."""


def key_id(change: RawChange, key_attrs: Sequence[str]) -> KeyId:
    """The key as hashable values: ``((tag, value), …)`` in key-attribute order."""
    return tuple(next(iter(change.keys[a].items())) for a in key_attrs)


def latest_changes(s3: S3Client, info: ExportInfo, key_attrs: Sequence[str], workers: int) -> dict[KeyId, Stamp]:
    """Read every file of an incremental export and return, per key, where its newest change is."""

    def scan(index: int) -> dict[KeyId, Stamp]:
        best: dict[KeyId, Stamp] = {}
        pos = 0
        for chunk in iter_file(s3, info, info.files[index], key_attrs):
            for change in chunk:
                stamp = (change.approx_time or NEVER, index, pos)
                key = key_id(change, key_attrs)
                if stamp > best.get(key, (NEVER, -1, -1)):
                    best[key] = stamp
                pos += 1
        return best

    merged: dict[KeyId, Stamp] = {}
    with ThreadPoolExecutor(max(1, min(workers, len(info.files))), thread_name_prefix="export-keys") as pool:
        for best in pool.map(scan, range(len(info.files))):
            if not merged:
                merged = best
                continue
            for key, stamp in best.items():
                if stamp > merged.get(key, (NEVER, -1, -1)):
                    merged[key] = stamp
    return merged


def with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Yield ``(item, is_last)``, looking one item ahead."""
    it = iter(items)
    try:
        current = next(it)
    except StopIteration:
        return
    for following in it:
        yield current, False
        current = following
    yield current, True


class FileLoader:
    """The shared state of one process's workers: what to load, how, and what happened."""

    def __init__(self, settings: Settings, plan: TablePlan, info: ExportInfo, advance: Callable[[int], None], *,
                 chunk_size: int, winners: dict[KeyId, Stamp] | None = None) -> None:
        self.settings = settings
        self.plan = plan
        self.info = info
        self.advance = advance
        """Called with the number of changes of every committed chunk (progress)."""
        self.chunk_size = chunk_size
        self.winners = winners
        self.key_attrs = plan.mappings[0].source_key
        self.index = {f.key: i for i, f in enumerate(info.files)}
        self.s3 = s3_client(aws_config(settings))
        self.lock = threading.Lock()
        self.stats = ApplyStats()
        self.failed: dict[int, str] = {}
        """Segment number → why its file failed (one line, naming the file)."""
        self.worker = worker_id()

    def run_worker(self) -> int:
        """Load files until none is left to claim; returns how many this worker finished."""
        finished = 0
        table = self.plan.source_table
        with connect(self.settings.require_database(), autocommit=True) as conn:
            while (seg := backfills.claim_next(conn, table, self.worker)) is not None:
                try:
                    self._load_file(conn, seg)
                    finished += 1
                except SourceError as exc:
                    with self.lock:
                        self.failed[seg.segment] = str(exc)
                    log.error("%s", exc)
                    if not conn.closed:
                        backfills.fail(conn, table, seg.segment, str(exc))
                finally:
                    if not conn.closed:
                        backfills.release(conn, table, seg.segment)
        return finished

    def _datafile(self, seg: backfills.Segment) -> tuple[int, DataFile]:
        if seg.name is None or seg.name not in self.index:
            raise SourceError(f"file {seg.name!r} of the recorded run is not in the export {self.info.url}",
                              hint="the export changed since the run began: load it again with --restart")
        at = self.index[seg.name]
        return at, self.info.files[at]

    def _load_file(self, conn: psycopg.Connection[Any], seg: backfills.Segment) -> None:
        file_index, datafile = self._datafile(seg)
        with_resume(conn, self.plan.source_table, seg, seg.name or datafile.key,
                    lambda resume: self._chunks(conn, seg.segment, file_index, datafile, resume),
                    attempts=MAX_RETRIES)

    def _chunks(self, conn: psycopg.Connection[Any], segment: int, file_index: int, datafile: DataFile,
                resume: dict[str, Any] | None) -> None:
        skip = int((resume or {}).get("chunk", 0))
        size = int((resume or {}).get("chunk_size", self.chunk_size))
        table = self.plan.source_table
        stop = threading.Event()
        chunks = iter_file(self.s3, self.info, datafile, self.key_attrs, chunk_size=size)
        number = pos = 0
        for chunk, last in with_last(prefetch(chunks, stop, PREFETCH_CHUNKS, name="export-read")):
            number += 1
            first, pos = pos, pos + len(chunk)
            if number <= skip and not last:
                continue
            todo = chunk if number > skip else []
            if self.winners is not None:
                todo = self._newest(todo, file_index, first)
            with conn.transaction():
                stats = apply_changes(conn, self.plan, todo, origin="export") if todo else ApplyStats()
                backfills.advance(conn, table, segment, resume_key={"chunk": number, "chunk_size": size},
                                  items=len(chunk) if number > skip else 0, done=last)
            with self.lock:
                self.stats += stats
            if number > skip:
                self.advance(len(chunk))
        if number == 0:  # an empty file (an empty partition): nothing to apply, but done
            with conn.transaction():
                backfills.advance(conn, table, segment, resume_key={"chunk": 0, "chunk_size": size}, items=0,
                                  done=True)

    def _newest(self, chunk: list[RawChange], file_index: int, first: int) -> list[RawChange]:
        """The changes of ``chunk`` that are their key's newest in the whole incremental export."""
        assert self.winners is not None
        winners, keys = self.winners, self.key_attrs
        return [c for offset, c in enumerate(chunk)
                if winners.get(key_id(c, keys), (NEVER, -1, -1))[1:] == (file_index, first + offset)]
