"""Read a table: its description, one parallel-scan segment page by page, and a read-capacity rate limit.

Pages carry their position (``LastEvaluatedKey``) and nothing is stored here: the backfill runner commits each
page's rows together with its ``resume_from`` and hands it back as ``start_key`` after a restart. A resume key is
meaningful only for the same segment *and the same TotalSegments* (DynamoDB ScanInput), so a run keeps its
TotalSegments fixed.

Items are DynamoDB JSON as read; B values are bytes (plain boto3) or base64 text (fast path). Resume keys always
leave as plain JSON (B as base64 text, see :func:`ddbrepl.sources.fastpath.json_key`) so they can be stored as jsonb.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ddbrepl.records import AttrMap, Page
from ddbrepl.sources.aws import aws_errors
from ddbrepl.sources.fastpath import json_key, wire_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
MAX_SEGMENTS = 1000
"""Upper bound for the default TotalSegments; more only adds per-segment overhead and bookkeeping rows."""


@dataclass(frozen=True, slots=True)
class KeyAttr:
    """One key attribute: its name and DynamoDB scalar type (``S``, ``N`` or ``B``)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the runners need from DescribeTable.

    ``item_count`` and ``size_bytes`` are DynamoDB's estimates, refreshed about every six hours: good for an ETA
    and for choosing TotalSegments, not for verification.
    """

    name: str
    arn: str
    partition_key: KeyAttr
    sort_key: KeyAttr | None
    item_count: int
    size_bytes: int
    status: str
    stream_enabled: bool
    stream_arn: str | None
    """``LatestStreamArn``: the newest stream, which may be disabled (check ``stream_enabled``)."""
    stream_view_type: str | None

    @property
    def key_names(self) -> tuple[str, ...]:
        """Partition key then sort key, the order of ``source.key`` in a mapping."""
        return (self.partition_key.name,) if self.sort_key is None else (self.partition_key.name, self.sort_key.name)


def describe_table(client: DynamoDBClient, table: str) -> TableInfo:
    """DescribeTable, reduced to :class:`TableInfo`. A missing table raises :class:`ddbrepl.errors.SourceError`."""
    with aws_errors(f"DescribeTable of {table!r}"):
        desc: Mapping[str, Any] = client.describe_table(TableName=table)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", ())}
    keys = {k["KeyType"]: k["AttributeName"] for k in desc.get("KeySchema", ())}
    hash_name = keys["HASH"]
    range_name = keys.get("RANGE")
    spec = desc.get("StreamSpecification") or {}
    enabled = bool(spec.get("StreamEnabled", False))
    return TableInfo(
        name=desc.get("TableName", table),
        arn=desc.get("TableArn", ""),
        partition_key=KeyAttr(hash_name, types.get(hash_name, "S")),
        sort_key=None if range_name is None else KeyAttr(range_name, types.get(range_name, "S")),
        item_count=int(desc.get("ItemCount", 0)),
        size_bytes=int(desc.get("TableSizeBytes", 0)),
        status=str(desc.get("TableStatus", "ACTIVE")),
        stream_enabled=enabled,
        stream_arn=desc.get("LatestStreamArn"),
        stream_view_type=spec.get("StreamViewType") if enabled else None,
    )


def suggest_segments(size_bytes: int, item_count: int) -> int:
    """The default TotalSegments for a table of this size.

    AWS's rule of thumb is one segment per 2 GB. Below that, a few segments still overlap the network round
    trips of a 1 MB page (about 4 are enough to keep a loader busy), but never more segments than pages: a
    segment with nothing to read costs a call and a bookkeeping row. ``item_count`` guards against a stale
    size estimate of 0 on a freshly loaded table (sizes refresh about every six hours).
    """
    size = max(size_bytes, 0)
    if size == 0 and item_count > 0:
        size = item_count * 1024  # unknown size: assume 1 KB items, a conservative guess for DynamoDB
    pages = math.ceil(size / MIB)
    by_size = math.ceil(size / (2 * GIB))
    return max(1, min(MAX_SEGMENTS, max(by_size, min(pages, 4))))


_EPSILON = 1e-6


class RateLimiter:
    """A token bucket over consumed read capacity units per second (``--max-rcu``), shared by segment threads.

    Scan reports what a page cost only after the call (ReturnConsumedCapacity=TOTAL), so the bucket may go into
    debt: :meth:`wait` blocks while the balance is negative, :meth:`consume` charges the real cost afterwards.
    Over any window the average stays at ``rate`` units/s, with bursts up to ``burst`` units.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive capacity units per second, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def balance(self) -> float:
        """Capacity units available now; negative while a page's cost is being paid back."""
        with self._lock:
            self._refill()
            return self._tokens

    def wait(self) -> float:
        """Block until the balance is non-negative; returns the seconds slept (for metrics)."""
        slept = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= -_EPSILON:  # float residue must not turn into endless tiny sleeps
                    return slept
                delay = -self._tokens / self.rate
            self._sleep(delay)
            slept += delay

    def consume(self, units: float) -> None:
        """Charge ``units`` capacity units a call actually consumed."""
        with self._lock:
            self._refill()
            self._tokens -= units


def _consumed(response: Mapping[str, Any]) -> float:
    cap = response.get("ConsumedCapacity")
    if not cap:
        return 0.0
    return float(cap.get("CapacityUnits", 0.0) or 0.0)


def scan_segment(
    client: DynamoDBClient,
    table: str,
    segment: int,
    total_segments: int,
    start_key: AttrMap | None,
    *,
    limit: int | None = None,
    consistent_read: bool = False,
    rate_limiter: RateLimiter | None = None,
) -> Iterator[Page]:
    """Yield the pages of one parallel-scan segment, from ``start_key`` (exclusive) to its end.

    ``page.resume_from`` is the page's LastEvaluatedKey as plain JSON; None on the last page. An empty page can
    still carry a key (the scan evaluated items and filtered none in, or hit the 1 MB limit on its way), so only an
    absent key ends the segment. ``limit`` caps the items evaluated per call (DynamoDB's own ``Limit``), a way to
    bound one worker's share of the table's throughput. Throttling beyond botocore's retries raises
    :class:`ddbrepl.errors.Retriable`; the caller re-runs the segment from the last committed ``resume_from``.
    """
    if not 0 <= segment < total_segments:
        raise ValueError(f"segment {segment} is outside 0..{total_segments - 1}")
    params: dict[str, Any] = {
        "TableName": table,
        "Segment": segment,
        "TotalSegments": total_segments,
        "ConsistentRead": consistent_read,
        "ReturnConsumedCapacity": "TOTAL",
    }
    if limit is not None:
        params["Limit"] = limit
    key: AttrMap | None = start_key
    action = f"Scan of {table!r} segment {segment}/{total_segments}"
    while True:
        if key is not None:
            params["ExclusiveStartKey"] = wire_key(key)
        if rate_limiter is not None:
            rate_limiter.wait()
        with aws_errors(action):
            response: Mapping[str, Any] = client.scan(**params)
        if rate_limiter is not None:
            rate_limiter.consume(_consumed(response))
        last = response.get("LastEvaluatedKey")
        key = json_key(last) if last else None
        yield Page(segment=segment, items=response.get("Items", []), resume_from=key)
        if key is None:
            return
