"""sources.stream and the ShardReader against a moto server: real stream records over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from ddbrepl.errors import SourceError
from ddbrepl.sources.aws import AwsConfig, clients
from ddbrepl.sources.reader import ShardReader
from ddbrepl.sources.scan import describe_table
from ddbrepl.sources.stream import describe_stream, get_iterator, read

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.literals import StreamViewTypeType


def employees(url: str, view_type: StreamViewTypeType, *, fast: bool = True) -> tuple[Any, str]:
    """The AWS blog's Employees table with a stream; returns the clients and the stream ARN."""
    made = clients(AwsConfig(endpoint_url=url, fast_path=fast))
    made.dynamodb.create_table(
        TableName="Employees",
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
    )
    arn = describe_table(made.dynamodb, "Employees").stream_arn
    assert arn is not None
    return made, arn


def blog_story(dynamodb: Any) -> None:
    key = {"Id": {"N": "2001"}}
    dynamodb.put_item(TableName="Employees", Item={**key, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}})
    dynamodb.update_item(
        TableName="Employees",
        Key=key,
        UpdateExpression="SET empDepartment = :d",
        ExpressionAttributeValues={":d": {"S": "ExDept"}},
    )
    dynamodb.delete_item(TableName="Employees", Key=key)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "boto3"])
def test_put_update_delete_arrive_as_ordered_raw_changes(aws_url: str, fast: bool) -> None:
    made, arn = employees(aws_url, "NEW_AND_OLD_IMAGES", fast=fast)
    before = datetime.now(UTC) - timedelta(seconds=5)
    blog_story(made.dynamodb)
    info = describe_stream(made.streams, arn)
    assert info.enabled and info.table == "Employees" and info.view_type == "NEW_AND_OLD_IMAGES"
    (shard,) = info.shards
    assert not shard.closed and shard.parent_id is None
    iterator = get_iterator(made.streams, arn, shard.id, None)
    assert iterator is not None
    batch = read(made.streams, shard.id, iterator)
    assert batch.next_iterator is not None  # an open shard always hands out the next iterator
    insert, modify, remove = batch.changes
    assert [c.event for c in batch.changes] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(c.keys == {"Id": {"N": "2001"}} for c in batch.changes)
    assert insert.new_image == {"Id": {"N": "2001"}, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}}
    assert insert.old_image is None
    assert modify.new_image is not None and modify.new_image["empDepartment"] == {"S": "ExDept"}
    assert modify.old_image is not None and modify.old_image["empDepartment"] == {"S": "AnyDept"}
    assert remove.new_image is None and remove.old_image == modify.new_image
    sequences = [c.sequence for c in batch.changes if c.sequence is not None]
    assert len(sequences) == 3 and sequences == sorted(sequences)
    for change in batch.changes:
        assert change.approx_time is not None and change.approx_time.tzinfo is not None
        assert before <= change.approx_time <= datetime.now(UTC) + timedelta(seconds=5)
        assert not change.ttl_delete and change.event_id


def test_resume_after_a_checkpoint_reads_only_later_changes(aws_url: str) -> None:
    made, arn = employees(aws_url, "NEW_IMAGE")
    blog_story(made.dynamodb)
    (shard,) = describe_stream(made.streams, arn).shards
    first = read(made.streams, shard.id, get_iterator(made.streams, arn, shard.id, None) or "")
    checkpoint = first.changes[1].sequence
    again = read(made.streams, shard.id, get_iterator(made.streams, arn, shard.id, checkpoint) or "")
    assert [c.event for c in again.changes] == ["REMOVE"]
    assert again.changes[0].new_image is None  # a REMOVE under NEW_IMAGE carries only Keys


def test_keys_only_streams_carry_no_images(aws_url: str) -> None:
    made, arn = employees(aws_url, "KEYS_ONLY")
    blog_story(made.dynamodb)
    (shard,) = describe_stream(made.streams, arn).shards
    batch = read(made.streams, shard.id, get_iterator(made.streams, arn, shard.id, None) or "")
    assert [(c.event, c.keys, c.new_image, c.old_image) for c in batch.changes] == [
        ("INSERT", {"Id": {"N": "2001"}}, None, None),
        ("MODIFY", {"Id": {"N": "2001"}}, None, None),
        ("REMOVE", {"Id": {"N": "2001"}}, None, None),
    ]


def test_latest_skips_what_was_written_before(aws_url: str) -> None:
    made, arn = employees(aws_url, "NEW_IMAGE")
    made.dynamodb.put_item(TableName="Employees", Item={"Id": {"N": "1"}})
    (shard,) = describe_stream(made.streams, arn).shards
    iterator = get_iterator(made.streams, arn, shard.id, None, "LATEST") or ""
    made.dynamodb.put_item(TableName="Employees", Item={"Id": {"N": "2"}})
    assert [c.keys for c in read(made.streams, shard.id, iterator).changes] == [{"Id": {"N": "2"}}]


def test_the_shard_reader_follows_new_writes_and_reports_caught_up(aws_url: str) -> None:
    made, arn = employees(aws_url, "NEW_IMAGE")
    blog_story(made.dynamodb)
    (shard,) = describe_stream(made.streams, arn).shards
    reader = ShardReader(made.streams, arn, shard, idle_min=0.01, idle_max=0.05, idle_reads=3)
    seen = list(reader.next_batch().changes)
    assert len(seen) == 3
    while not reader.caught_up:
        assert reader.next_batch().changes == []
    made.dynamodb.put_item(TableName="Employees", Item={"Id": {"N": "7"}})
    assert [c.keys for c in reader.next_batch().changes] == [{"Id": {"N": "7"}}]
    assert not reader.caught_up and reader.position is not None and reader.position > (seen[-1].sequence or 0)


def test_a_missing_stream_is_a_source_error(aws_url: str) -> None:
    made, arn = employees(aws_url, "NEW_IMAGE")
    with pytest.raises(SourceError):
        describe_stream(made.streams, arn.replace("Employees", "Nobody"))
