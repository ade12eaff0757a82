"""Read a DynamoDB stream: shards (DescribeStream, paginated), iterators, GetRecords → records.RawChange.

Nothing is stored here: a batch carries its changes' sequence numbers and the runner commits the last one with the
rows. Error outcomes, each with its own type so the tail runner can act on it:

- ``ExpiredIteratorException`` (iterators live 15 min) → :class:`IteratorExpired`: renew from the checkpoint;
- ``TrimmedDataAccessException`` → :class:`TrimmedData`, a :class:`ddbrepl.errors.DataLoss`: records after the
  position were trimmed unread (24 h retention). The runner may decide it is harmless (e.g. before a backfill's
  start), otherwise it stops and asks for a new backfill;
- ``ResourceNotFoundException`` on a shard → the shard is finished (DescribeStream may list shards already gone);
- throttling, ``LimitExceededException``, 5xx → :class:`ddbrepl.errors.Retriable`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ddbrepl.errors import DataLoss, Retriable
from ddbrepl.records import RawChange, Shard, StreamBatch
from ddbrepl.sources.aws import error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logging.getLogger(__name__)

StartAt = Literal["TRIM_HORIZON", "LATEST"]
MAX_RECORDS = 1000
"""GetRecords refuses a larger Limit (LimitExceededException)."""
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class IteratorExpired(Retriable):
    """The shard iterator is older than 15 minutes; get a new one from the last applied sequence number."""

    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        super().__init__(f"shard iterator of {shard_id} expired", hint="renew it from the shard's checkpoint")


class TrimmedData(DataLoss):
    """Records of a shard after ``after_sequence`` were trimmed from the stream before they were read."""

    def __init__(self, shard_id: str, after_sequence: int | None) -> None:
        self.shard_id = shard_id
        self.after_sequence = after_sequence
        where = "from its start" if after_sequence is None else f"after sequence number {after_sequence}"
        super().__init__(
            f"stream records of shard {shard_id} {where} were trimmed (24 h retention) before they were applied",
            hint="those changes are lost to the stream: stop tail for this table and re-seed it with `ddbrepl "
            "backfill --table T --source export --restart`, which also forgets the stale checkpoints "
            "(docs/recovery.md)",
        )


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """DescribeStream, all pages: the stream's state and every listed shard."""

    arn: str
    table: str
    status: str
    """ENABLING, ENABLED, DISABLING or DISABLED. A disabled stream's shards stay readable for 24 h."""
    view_type: str
    shards: tuple[Shard, ...]

    @property
    def enabled(self) -> bool:
        return self.status in ("ENABLED", "ENABLING")


def _shard(raw: Mapping[str, Any]) -> Shard:
    rng = raw.get("SequenceNumberRange") or {}
    start = rng.get("StartingSequenceNumber")
    end = rng.get("EndingSequenceNumber")
    return Shard(
        id=raw["ShardId"],
        parent_id=raw.get("ParentShardId") or None,
        starting_sequence=int(start) if start else 0,
        ending_sequence=int(end) if end else None,
    )


def _fail(exc: Exception, action: str, shard_id: str | None, after: int | None) -> Exception:
    code = error_code(exc)
    if code == "ExpiredIteratorException" and shard_id is not None:
        return IteratorExpired(shard_id)
    if code == "TrimmedDataAccessException" and shard_id is not None:
        return TrimmedData(shard_id, after)
    return translate(exc, action)


def describe_stream(streams: DynamoDBStreamsClient, arn: str, *, page_size: int = 100) -> StreamInfo:
    """DescribeStream with every page followed (botocore has no paginator for it).

    The last page is the one without ``LastEvaluatedShardId``; a repeated value also ends the loop, so a
    misbehaving endpoint cannot spin it forever.
    """
    params: dict[str, Any] = {"StreamArn": arn, "Limit": page_size}
    listed: list[Shard] = []
    seen_marks: set[str] = set()
    while True:
        try:
            desc: Mapping[str, Any] = streams.describe_stream(**params)["StreamDescription"]
        except (ClientError, BotoCoreError) as exc:
            raise _fail(exc, f"DescribeStream of {arn}", None, None) from exc
        listed.extend(_shard(s) for s in desc.get("Shards", ()))
        mark = desc.get("LastEvaluatedShardId")
        if not mark or mark in seen_marks:
            break
        seen_marks.add(mark)
        params["ExclusiveStartShardId"] = mark
    return StreamInfo(
        arn=desc.get("StreamArn", arn),
        table=desc.get("TableName", ""),
        status=desc.get("StreamStatus", "ENABLED"),
        view_type=desc.get("StreamViewType", ""),
        shards=tuple(_dedupe(listed)),
    )


def _dedupe(shards: Iterable[Shard]) -> list[Shard]:
    by_id: dict[str, Shard] = {}
    for shard in shards:
        if shard.id not in by_id or shard.closed:
            by_id[shard.id] = shard
    return list(by_id.values())


def child_shards(streams: DynamoDBStreamsClient, arn: str, parent_id: str) -> list[Shard]:
    """The children of one shard, via ``ShardFilter=CHILD_SHARDS`` (cheaper than a full listing).

    Endpoints that ignore the filter (moto) return every shard; the result is filtered here too.
    """
    params: dict[str, Any] = {"StreamArn": arn, "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": parent_id}}
    out: list[Shard] = []
    seen_marks: set[str] = set()
    while True:
        try:
            desc: Mapping[str, Any] = streams.describe_stream(**params)["StreamDescription"]
        except (ClientError, BotoCoreError) as exc:
            raise _fail(exc, f"DescribeStream (children of {parent_id}) of {arn}", None, None) from exc
        out.extend(s for s in map(_shard, desc.get("Shards", ())) if s.parent_id == parent_id)
        mark = desc.get("LastEvaluatedShardId")
        if not mark or mark in seen_marks:
            return _dedupe(out)
        seen_marks.add(mark)
        params["ExclusiveStartShardId"] = mark


def get_iterator(
    streams: DynamoDBStreamsClient,
    arn: str,
    shard_id: str,
    after_sequence: int | None,
    at: StartAt = "TRIM_HORIZON",
) -> str | None:
    """A shard iterator just after ``after_sequence`` (a checkpoint), or at ``at`` when there is none.

    Returns None when the shard no longer exists: the caller treats it as finished. LATEST is not a storable
    position: use it only for a shard with no checkpoint whose history is not wanted.
    """
    params: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id}
    if after_sequence is not None:
        params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=str(after_sequence))
    else:
        params["ShardIteratorType"] = at
    try:
        response = streams.get_shard_iterator(**params)
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ResourceNotFoundException":
            log.info("shard %s is gone from %s; treating it as finished", shard_id, arn)
            return None
        raise _fail(exc, f"GetShardIterator of {shard_id}", shard_id, after_sequence) from exc
    iterator = response.get("ShardIterator")
    return str(iterator) if iterator else None


def approx_time(value: Any) -> datetime | None:
    """``ApproximateCreationDateTime`` as an aware UTC datetime: boto3 gives a datetime, the fast path epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def to_change(record: Mapping[str, Any]) -> RawChange:
    """One GetRecords record as a RawChange; images stay DynamoDB JSON, the sequence number becomes an int."""
    body: Mapping[str, Any] = record.get("dynamodb", {})
    identity = record.get("userIdentity") or {}
    return RawChange(
        event=record["eventName"],
        keys=body.get("Keys", {}),
        new_image=body.get("NewImage"),
        old_image=body.get("OldImage"),
        sequence=int(body["SequenceNumber"]),
        approx_time=approx_time(body.get("ApproximateCreationDateTime")),
        ttl_delete=identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
        event_id=record.get("eventID"),
    )


def read(
    streams: DynamoDBStreamsClient,
    shard_id: str,
    iterator: str,
    limit: int = MAX_RECORDS,
    *,
    after_sequence: int | None = None,
) -> StreamBatch:
    """One GetRecords call. ``next_iterator`` None means the shard is closed and read to its end.

    ``after_sequence`` (the caller's position) only enriches a :class:`TrimmedData` error. A shard that no longer
    exists reads as finished. An empty batch with an iterator proves nothing about being caught up: AWS may need
    several calls to walk past empty stretches of a shard.
    """
    if not 1 <= limit <= MAX_RECORDS:
        raise ValueError(f"GetRecords limit must be 1..{MAX_RECORDS}, got {limit}")
    try:
        response: Mapping[str, Any] = streams.get_records(ShardIterator=iterator, Limit=limit)
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ResourceNotFoundException":
            log.info("shard %s is gone; treating it as finished", shard_id)
            return StreamBatch(shard_id=shard_id, changes=(), next_iterator=None)
        raise _fail(exc, f"GetRecords of shard {shard_id}", shard_id, after_sequence) from exc
    changes: Sequence[RawChange] = [to_change(r) for r in response.get("Records", ())]
    next_iterator = response.get("NextShardIterator")
    return StreamBatch(shard_id=shard_id, changes=changes, next_iterator=str(next_iterator) if next_iterator else None)
