"""FakeStreams: a fake of boto3's ``dynamodbstreams`` client, for what moto cannot produce.

moto has one shard that never closes and never raises ExpiredIterator, TrimmedDataAccess or throttling (facts
§1.9). This fake sits at the boto3 client boundary — the same method names, parameters, response shapes and
exception classes (``ClientError`` subclasses from a real botocore client's error factory) — so code under test
runs unchanged against it. It is a test double, not an emulator: no signing, no HTTP, no 1 MB limit.

Build a stream, write changes, then split, trim, expire or throttle::

    fake = FakeStreams()
    root = fake.add_shard()
    seq = fake.put("INSERT", {"pk": {"S": "a"}}, new={"pk": {"S": "a"}, "v": {"N": "1"}})
    left, right = fake.split(root)          # root closes; writes now route to left/right by key
    fake.throttle(2)                        # the next 2 GetRecords raise ThrottlingException
    fake.expire_iterators()                 # every iterator handed out so far is expired
    fake.trim(left, through=seq)            # records up to seq are gone: reading them raises TrimmedDataAccess

Thread-safe (one lock), so the tail runner's readers may share one instance.
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3
import orjson
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Fake/stream/2026-11-25T00:00:00.000"
VIEW_FIELDS = {
    "KEYS_ONLY": (),
    "NEW_IMAGE": ("NewImage",),
    "OLD_IMAGE": ("OldImage",),
    "NEW_AND_OLD_IMAGES": ("NewImage", "OldImage"),
}


@cache
def _exceptions() -> Any:
    # A real client's error factory gives the exact classes boto3 raises; building a client makes no request.
    return boto3.client(
        "dynamodbstreams", region_name="us-east-1", aws_access_key_id="fake", aws_secret_access_key="fake"
    ).exceptions


def client_error(code: str, operation: str, message: str = "", status: int = 400) -> ClientError:
    """The exception boto3 would raise for ``code`` (a modeled subclass when the model knows the code)."""
    response: Any = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }
    error: ClientError = _exceptions().from_code(code)(response, operation)
    return error


@dataclass
class FakeShard:
    id: str
    parent_id: str | None
    starting_sequence: int
    records: list[dict[str, Any]] = field(default_factory=list)
    ending_sequence: int | None = None
    trimmed: int = 0
    """How many of the oldest records are trimmed away."""
    empty_pages: int = 0
    """The next N reads of this shard return no records (an empty stretch), without moving."""
    visible: bool = True
    gone: bool = False


@dataclass
class _Iterator:
    shard_id: str
    position: int
    generation: int


class FakeStreams:
    """A fake ``dynamodbstreams`` client holding one stream; see the module docstring."""

    def __init__(
        self,
        arn: str = ARN,
        *,
        table: str = "Fake",
        view_type: str = "NEW_AND_OLD_IMAGES",
        first_sequence: int = 1_100_000_000_017_454_423_009,
        sequence_step: int = 7,
        page_size: int = 100,
        trailing_mark: bool = False,
        epoch_times: bool = False,
    ) -> None:
        self.arn = arn
        self.table = table
        self.view_type = view_type
        self.status = "ENABLED"
        self.page_size = page_size
        self.trailing_mark = trailing_mark
        """Return LastEvaluatedShardId on the last DescribeStream page too (AWS may; only its absence ends)."""
        self.epoch_times = epoch_times
        """ApproximateCreationDateTime as epoch seconds (the fast path's shape) instead of a datetime."""
        self.shards: dict[str, FakeShard] = {}
        self.calls: Counter[str] = Counter()
        self._sequence = first_sequence
        self._step = sequence_step
        self._ids = itertools.count(1)
        self._iterators: dict[str, _Iterator] = {}
        self._generation = 0
        self._throttles: list[str] = []
        self._lock = threading.RLock()

    @property
    def client(self) -> DynamoDBStreamsClient:
        """This fake, typed as the boto3 client it stands in for."""
        return cast("DynamoDBStreamsClient", self)

    # ---- building the stream ------------------------------------------------------------------------------

    def add_shard(self, shard_id: str | None = None, parent: str | None = None, *, visible: bool = True) -> str:
        """Open a new shard (optionally the child of ``parent``) and return its id."""
        with self._lock:
            sid = shard_id or f"shardId-{1_700_000_000_000 + next(self._ids):020d}-{next(self._ids):08x}"
            self.shards[sid] = FakeShard(sid, parent, self._sequence, visible=visible)
            return sid

    def open_shards(self) -> list[str]:
        with self._lock:
            return sorted(s.id for s in self.shards.values() if s.ending_sequence is None and not s.gone)

    def route(self, keys: Mapping[str, Any]) -> str:
        """The open shard a write of these keys goes to (stable while the set of open shards is unchanged)."""
        open_ids = self.open_shards()
        if not open_ids:
            raise RuntimeError("the fake stream has no open shard: add_shard() first")
        return open_ids[zlib.crc32(orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)) % len(open_ids)]

    def put(
        self,
        event: str,
        keys: Mapping[str, Any],
        new: Mapping[str, Any] | None = None,
        old: Mapping[str, Any] | None = None,
        *,
        shard_id: str | None = None,
        ttl: bool = False,
        at: datetime | None = None,
    ) -> int:
        """Append one change (to ``shard_id`` or the routed open shard); returns its sequence number."""
        with self._lock:
            sid = shard_id or self.route(keys)
            shard = self.shards[sid]
            if shard.ending_sequence is not None:
                raise ValueError(f"shard {sid} is closed")
            seq = self._sequence
            self._sequence += self._step
            body: dict[str, Any] = {
                "ApproximateCreationDateTime": (at or datetime.now(UTC)).replace(microsecond=0),
                "Keys": dict(keys),
                "SequenceNumber": str(seq),
                "SizeBytes": 100,
                "StreamViewType": self.view_type,
            }
            images = {"NewImage": new if event != "REMOVE" else None, "OldImage": old if event != "INSERT" else None}
            for name in VIEW_FIELDS[self.view_type]:
                if images[name] is not None:
                    body[name] = dict(images[name] or {})
            record: dict[str, Any] = {
                "eventID": f"{seq:x}",
                "eventName": event,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": body,
            }
            if ttl:
                record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
            shard.records.append(record)
            return seq

    def close(self, shard_id: str) -> None:
        """Close a shard: no more writes; readers get no NextShardIterator after its last record."""
        with self._lock:
            shard = self.shards[shard_id]
            if shard.ending_sequence is None:
                last = int(shard.records[-1]["dynamodb"]["SequenceNumber"]) if shard.records else self._sequence
                shard.ending_sequence = last
                self._sequence = max(self._sequence, last + self._step)

    def split(self, shard_id: str, into: int = 2, *, visible: bool = True) -> list[str]:
        """Close a shard and open ``into`` children (1 = the periodic rollover). ``visible=False`` keeps the
        children out of DescribeStream until :meth:`reveal` (the "closed leaf, no child yet" shape)."""
        with self._lock:
            self.close(shard_id)
            return [self.add_shard(parent=shard_id, visible=visible) for _ in range(into)]

    def disable(self) -> None:
        """Disable the stream: status DISABLED, every open shard closed (their records stay readable)."""
        with self._lock:
            self.status = "DISABLED"
            for sid in self.open_shards():
                self.close(sid)

    def reveal(self, *shard_ids: str) -> None:
        with self._lock:
            for sid in shard_ids:
                self.shards[sid].visible = True

    def remove_shard(self, shard_id: str) -> None:
        """The shard is gone: still listed, but GetShardIterator/GetRecords raise ResourceNotFoundException."""
        with self._lock:
            self.shards[shard_id].gone = True

    def trim(self, shard_id: str, through: int) -> None:
        """Trim every record of the shard with a sequence number ≤ ``through``."""
        with self._lock:
            shard = self.shards[shard_id]
            shard.trimmed = sum(1 for r in shard.records if int(r["dynamodb"]["SequenceNumber"]) <= through)

    def empty_stretch(self, shard_id: str, pages: int) -> None:
        """The next ``pages`` reads of the shard return no records although records follow."""
        with self._lock:
            self.shards[shard_id].empty_pages = pages

    def expire_iterators(self) -> None:
        """Every iterator handed out so far raises ExpiredIteratorException from now on."""
        with self._lock:
            self._generation += 1

    def throttle(self, times: int = 1, code: str = "ThrottlingException") -> None:
        """The next ``times`` GetRecords calls raise ``code`` (ThrottlingException, LimitExceededException…)."""
        with self._lock:
            self._throttles.extend([code] * times)

    # ---- the boto3 surface --------------------------------------------------------------------------------

    def _check_arn(self, arn: str, operation: str) -> None:
        if arn != self.arn:
            raise client_error("ResourceNotFoundException", operation, f"Requested resource not found: {arn}")

    def describe_stream(
        self,
        *,
        StreamArn: str,
        Limit: int = 100,
        ExclusiveStartShardId: str | None = None,
        ShardFilter: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self.calls["describe_stream"] += 1
            self._check_arn(StreamArn, "DescribeStream")
            listed = [s for s in self.shards.values() if s.visible]
            if ShardFilter is not None:
                listed = [s for s in listed if s.parent_id == ShardFilter["ShardId"]]
            ids = [s.id for s in listed]
            start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId in ids else 0
            page = listed[start : start + min(Limit, self.page_size)]
            more = start + len(page) < len(listed)
            desc: dict[str, Any] = {
                "StreamArn": self.arn,
                "StreamLabel": self.arn.rsplit("/", 1)[-1],
                "StreamStatus": self.status,
                "StreamViewType": self.view_type,
                "TableName": self.table,
                "Shards": [self._shard_dict(s) for s in page],
            }
            if page and (more or self.trailing_mark):
                desc["LastEvaluatedShardId"] = page[-1].id
            return {"StreamDescription": desc}

    @staticmethod
    def _shard_dict(shard: FakeShard) -> dict[str, Any]:
        rng = {"StartingSequenceNumber": str(shard.starting_sequence)}
        if shard.ending_sequence is not None:
            rng["EndingSequenceNumber"] = str(shard.ending_sequence)
        out: dict[str, Any] = {"ShardId": shard.id, "SequenceNumberRange": rng}
        if shard.parent_id is not None:
            out["ParentShardId"] = shard.parent_id
        return out

    def _live_shard(self, shard_id: str, operation: str) -> FakeShard:
        shard = self.shards.get(shard_id)
        if shard is None or shard.gone:
            raise client_error("ResourceNotFoundException", operation, f"shard {shard_id} not found")
        return shard

    def _issue(self, shard_id: str, position: int) -> str:
        token = f"fake-iterator|{shard_id}|{position}|{next(self._ids)}"
        self._iterators[token] = _Iterator(shard_id, position, self._generation)
        return token

    def get_shard_iterator(
        self, *, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self.calls["get_shard_iterator"] += 1
            self._check_arn(StreamArn, "GetShardIterator")
            shard = self._live_shard(ShardId, "GetShardIterator")
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in shard.records]
            if ShardIteratorType == "TRIM_HORIZON":
                position = shard.trimmed
            elif ShardIteratorType == "LATEST":
                position = len(seqs)
            elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                if SequenceNumber is None:
                    raise client_error("ValidationException", "GetShardIterator", "SequenceNumber is required")
                n = int(SequenceNumber)
                after = ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
                position = next((i for i, s in enumerate(seqs) if (s > n if after else s >= n)), len(seqs))
                if position < shard.trimmed:
                    raise client_error(
                        "TrimmedDataAccessException", "GetShardIterator", f"sequence {n} is beyond the trim horizon"
                    )
            else:
                raise client_error("ValidationException", "GetShardIterator", f"bad type {ShardIteratorType}")
            return {"ShardIterator": self._issue(ShardId, position)}

    def get_records(self, *, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        with self._lock:
            self.calls["get_records"] += 1
            if Limit > 1000 or Limit < 1:
                raise client_error("ValidationException", "GetRecords", "Limit must be 1..1000")
            if self._throttles:
                raise client_error(self._throttles.pop(0), "GetRecords", "Rate exceeded")
            it = self._iterators.get(ShardIterator)
            if it is None:
                raise client_error("ValidationException", "GetRecords", "Invalid ShardIterator")
            if it.generation != self._generation:
                raise client_error("ExpiredIteratorException", "GetRecords", "Iterator expired")
            shard = self._live_shard(it.shard_id, "GetRecords")
            if it.position < shard.trimmed:
                raise client_error("TrimmedDataAccessException", "GetRecords", "records were trimmed")
            if shard.empty_pages > 0:
                shard.empty_pages -= 1
                page: list[dict[str, Any]] = []
                position = it.position
            else:
                page = shard.records[it.position : it.position + Limit]
                position = it.position + len(page)
            response: dict[str, Any] = {"Records": [self._render(r) for r in page]}
            at_end = position >= len(shard.records) and shard.empty_pages == 0
            if not (shard.ending_sequence is not None and at_end):
                response["NextShardIterator"] = self._issue(shard.id, position)
            return response

    def _render(self, record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        body = dict(record["dynamodb"])
        if self.epoch_times:
            body["ApproximateCreationDateTime"] = body["ApproximateCreationDateTime"].timestamp()
        out["dynamodb"] = body
        return out
