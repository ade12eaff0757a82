"""Read one shard continuously: iterator handling, idle backoff and throttle backoff; no storage.

The reader's position is the sequence number of the last change it handed out (or the checkpoint it was started
from). The tail runner applies and commits each batch before asking for the next, so that position equals the
committed checkpoint whenever the reader needs a new iterator (after 15 minutes an iterator expires; the reader
renews it by itself with AFTER_SEQUENCE_NUMBER). A runner that drops a batch without committing it must call
:meth:`ShardReader.reset` with its checkpoint.

Pacing: a batch with records is followed by an immediate read; an open shard that returned nothing is read again
after ``idle_min`` seconds, doubling up to ``idle_max`` (so an idle table costs about one GetRecords per open
shard per ``idle_max`` seconds, and a new change is seen within that). A closed shard is never paced: its empty
pages are stretches to walk past, not idleness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ddbrepl.errors import Retriable
from ddbrepl.records import Shard, StreamBatch
from ddbrepl.sources.stream import MAX_RECORDS, IteratorExpired, StartAt, get_iterator, read

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logging.getLogger(__name__)


class ShardReader:
    """Hand out a shard's batches in order, pacing reads; see the module docstring for the position contract."""

    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        arn: str,
        shard: Shard,
        *,
        after_sequence: int | None = None,
        start: StartAt = "TRIM_HORIZON",
        limit: int = MAX_RECORDS,
        idle_min: float = 0.1,
        idle_max: float = 1.0,
        idle_reads: int = 3,
        throttle_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.streams = streams
        self.arn = arn
        self.shard = shard
        self.position = after_sequence
        self.start = start
        self.limit = limit
        self.idle_min = idle_min
        self.idle_max = idle_max
        self.idle_reads = idle_reads
        self.throttle_max = throttle_max
        self._clock = clock
        self._sleep = sleep
        self._iterator: str | None = None
        self._finished = False
        self._empty_reads = 0
        self._throttles = 0
        self.due_at = clock()
        """Monotonic time at which the next read is due; a scheduler may read the most overdue reader first."""
        self.reads = 0

    @property
    def finished(self) -> bool:
        """The shard is closed and read to its end (or no longer exists): mark it finished, start its children."""
        return self._finished

    @property
    def caught_up(self) -> bool:
        """Finished, or an open shard that returned nothing on ``idle_reads`` reads in a row.

        One empty page alone proves nothing (facts §1.2); several in a row on an open shard mean the reader is at
        the shard's tip, which is what ``tail --until-idle`` waits for.
        """
        return self._finished or (not self.shard.closed and self._empty_reads >= self.idle_reads)

    def reset(self, after_sequence: int | None) -> None:
        """Forget the iterator; the next read starts just after ``after_sequence`` (the committed checkpoint)."""
        self.position = after_sequence
        self._iterator = None
        self._finished = False
        self._empty_reads = 0

    def _acquire(self) -> str | None:
        return get_iterator(self.streams, self.arn, self.shard.id, self.position, self.start)

    def _done(self) -> StreamBatch:
        self._finished = True
        self._iterator = None
        return StreamBatch(shard_id=self.shard.id, changes=(), next_iterator=None)

    def next_batch(self, *, wait: bool = True) -> StreamBatch:
        """Read the next batch; with ``wait`` sleep first until it is due (idle or throttle backoff).

        A finished reader returns an empty batch with ``next_iterator`` None. Raises
        :class:`ddbrepl.sources.stream.TrimmedData` and :class:`ddbrepl.errors.Retriable` (throttling, after
        botocore's retries; the next read is pushed back, up to ``throttle_max`` seconds).
        """
        if self._finished:
            return self._done()
        if wait:
            delay = self.due_at - self._clock()
            if delay > 0:
                self._sleep(delay)
        try:
            batch = self._read_once()
        except IteratorExpired:
            log.info("iterator of shard %s expired; renewing after sequence %s", self.shard.id, self.position)
            self._iterator = None
            batch = self._read_once()
        except Retriable:
            self._throttles += 1
            self.due_at = self._clock() + min(self.throttle_max, 0.2 * 2 ** (self._throttles - 1))
            raise
        self._throttles = 0
        return batch

    def _read_once(self) -> StreamBatch:
        if self._iterator is None:
            self._iterator = self._acquire()
            if self._iterator is None:
                return self._done()
        self.reads += 1
        batch = read(self.streams, self.shard.id, self._iterator, self.limit, after_sequence=self.position)
        if batch.changes:
            last = batch.changes[-1].sequence
            self.position = last if last is not None else self.position
        if batch.next_iterator is None:
            self._finished = True
            self._iterator = None
            return batch
        self._iterator = batch.next_iterator
        self._pace(bool(batch.changes))
        return batch

    def _pace(self, got_records: bool) -> None:
        now = self._clock()
        if got_records or self.shard.closed:
            self._empty_reads = 0 if got_records else self._empty_reads + 1
            self.due_at = now
            return
        self._empty_reads += 1
        self.due_at = now + min(self.idle_max, self.idle_min * 2 ** (self._empty_reads - 1))
