"""sources.stream against FakeStreams: pagination, record shapes, splits, expiry, throttling, trimming."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ddbrepl.errors import DataLoss, Retriable
from ddbrepl.sources.stream import (
    IteratorExpired,
    TrimmedData,
    child_shards,
    describe_stream,
    get_iterator,
    read,
)
from tests.fakes.streams import FakeStreams


def item(pk: str, **attrs: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def test_describe_stream_follows_every_page() -> None:
    fake = FakeStreams(page_size=2)
    made = [fake.add_shard() for _ in range(5)]
    info = describe_stream(fake.client, fake.arn)
    assert [s.id for s in info.shards] == made
    assert fake.calls["describe_stream"] == 3
    assert info.enabled and info.table == "Fake" and info.view_type == "NEW_AND_OLD_IMAGES"


def test_describe_stream_ends_when_the_last_page_still_carries_a_mark() -> None:
    # AWS: only an absent LastEvaluatedShardId ends the listing; a present one may lead to an empty page.
    fake = FakeStreams(page_size=2, trailing_mark=True)
    made = [fake.add_shard() for _ in range(4)]
    assert [s.id for s in describe_stream(fake.client, fake.arn).shards] == made


def test_shards_carry_lineage_and_integer_sequence_ranges() -> None:
    fake = FakeStreams()
    root = fake.add_shard()
    fake.put("INSERT", key("a"), new=item("a"), shard_id=root)
    left, right = fake.split(root)
    shards = {s.id: s for s in describe_stream(fake.client, fake.arn).shards}
    assert shards[root].closed and isinstance(shards[root].ending_sequence, int)
    assert shards[left].parent_id == root and not shards[left].closed
    assert [s.id for s in child_shards(fake.client, fake.arn, root)] == [left, right]


def test_records_become_raw_changes() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    at = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    s1 = fake.put("INSERT", key("a"), new=item("a", v="1"), at=at)
    s2 = fake.put("MODIFY", key("a"), new=item("a", v="2"), old=item("a", v="1"), at=at)
    s3 = fake.put("REMOVE", key("a"), old=item("a", v="2"), ttl=True, at=at)
    iterator = get_iterator(fake.client, fake.arn, shard, None)
    assert iterator is not None
    batch = read(fake.client, shard, iterator)
    assert batch.shard_id == shard and batch.next_iterator is not None
    insert, modify, remove = batch.changes
    assert (insert.event, insert.sequence, insert.new_image, insert.old_image) == ("INSERT", s1, item("a", v="1"), None)
    assert (modify.event, modify.sequence, modify.old_image) == ("MODIFY", s2, item("a", v="1"))
    assert (remove.event, remove.sequence, remove.new_image, remove.keys) == ("REMOVE", s3, None, key("a"))
    assert remove.ttl_delete and not insert.ttl_delete and not modify.ttl_delete
    assert insert.approx_time == at and insert.approx_time.tzinfo is not None
    assert insert.event_id and insert.event_id != modify.event_id


def test_epoch_seconds_from_the_fast_path_become_aware_datetimes() -> None:
    fake = FakeStreams(epoch_times=True)
    shard = fake.add_shard()
    at = datetime(2026, 11, 25, 10, 0, 7, tzinfo=UTC)
    fake.put("INSERT", key("a"), new=item("a"), at=at)
    batch = read(fake.client, shard, get_iterator(fake.client, fake.arn, shard, None) or "")
    assert batch.changes[0].approx_time == at


def test_resume_after_a_sequence_number_whose_length_differs() -> None:
    # 22-digit then 23-digit numbers: compared as strings "1000…" < "9999…" would break the resume.
    fake = FakeStreams(first_sequence=10**22 - 14, sequence_step=7)
    shard = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i))) for i in range(4)]
    assert len(str(seqs[0])) == 22 and len(str(seqs[-1])) == 23
    iterator = get_iterator(fake.client, fake.arn, shard, seqs[1])
    batch = read(fake.client, shard, iterator or "")
    assert [c.sequence for c in batch.changes] == seqs[2:]


def test_a_closed_shard_read_to_its_end_has_no_next_iterator() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    fake.put("INSERT", key("a"), new=item("a"))
    fake.put("INSERT", key("b"), new=item("b"))
    fake.close(shard)
    first = read(fake.client, shard, get_iterator(fake.client, fake.arn, shard, None) or "", limit=1)
    assert len(first.changes) == 1 and first.next_iterator is not None
    last = read(fake.client, shard, first.next_iterator, limit=1)
    assert len(last.changes) == 1 and last.next_iterator is None


def test_an_expired_iterator_raises_its_own_retriable_error() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    iterator = get_iterator(fake.client, fake.arn, shard, None)
    fake.expire_iterators()
    with pytest.raises(IteratorExpired) as caught:
        read(fake.client, shard, iterator or "")
    assert caught.value.shard_id == shard and isinstance(caught.value, Retriable)


@pytest.mark.parametrize("code", ["ThrottlingException", "LimitExceededException", "InternalServerError"])
def test_throttling_and_service_errors_are_retriable(code: str) -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    iterator = get_iterator(fake.client, fake.arn, shard, None) or ""
    fake.throttle(1, code=code)
    with pytest.raises(Retriable) as caught:
        read(fake.client, shard, iterator)
    assert not isinstance(caught.value, IteratorExpired)
    assert read(fake.client, shard, iterator).next_iterator


def test_trimmed_records_past_the_checkpoint_signal_data_loss() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i))) for i in range(5)]
    iterator = get_iterator(fake.client, fake.arn, shard, seqs[0]) or ""
    fake.trim(shard, through=seqs[2])
    with pytest.raises(TrimmedData) as on_read:
        read(fake.client, shard, iterator, after_sequence=seqs[0])
    assert isinstance(on_read.value, DataLoss)
    assert (on_read.value.shard_id, on_read.value.after_sequence) == (shard, seqs[0])
    assert "backfill" in str(on_read.value)
    with pytest.raises(TrimmedData):
        get_iterator(fake.client, fake.arn, shard, seqs[1])
    # A checkpoint at or past the trim point loses nothing: reading resumes with the next record.
    batch = read(fake.client, shard, get_iterator(fake.client, fake.arn, shard, seqs[2]) or "")
    assert [c.sequence for c in batch.changes] == seqs[3:]


def test_a_shard_that_is_gone_reads_as_finished() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    iterator = get_iterator(fake.client, fake.arn, shard, None) or ""
    fake.remove_shard(shard)
    assert read(fake.client, shard, iterator).next_iterator is None
    assert get_iterator(fake.client, fake.arn, shard, None) is None


def test_a_missing_stream_is_a_source_error() -> None:
    from ddbrepl.errors import SourceError

    with pytest.raises(SourceError):
        describe_stream(FakeStreams().client, "arn:aws:dynamodb:us-east-1:1:table/X/stream/nope")


def test_limit_above_the_api_maximum_is_refused_locally() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        read(fake.client, shard, "whatever", limit=1001)


def test_a_disabled_stream_reports_it_and_its_shards_read_to_their_end() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    seq = fake.put("INSERT", key("a"), new=item("a"))
    fake.disable()
    info = describe_stream(fake.client, fake.arn)
    assert not info.enabled and info.status == "DISABLED"
    assert info.shards[0].ending_sequence == seq
    batch = read(fake.client, shard, get_iterator(fake.client, fake.arn, shard, None) or "")
    assert [c.sequence for c in batch.changes] == [seq] and batch.next_iterator is None
