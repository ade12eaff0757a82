"""sources.scan against a moto server over HTTP: segments, pages, resume keys, the fast response path."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ddbrepl.errors import SourceError
from ddbrepl.records import Page
from ddbrepl.sources.aws import AwsConfig, dynamodb_client
from ddbrepl.sources.scan import RateLimiter, describe_table, scan_segment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ITEMS = 400


def make_item(i: int) -> dict[str, Any]:
    """A mixed-type item; the sort key is binary so resume keys exercise B handling."""
    return {
        "pk": {"S": f"user#{i % 37}"},
        "sk": {"B": i.to_bytes(4, "big") + b"\x00\xff"},
        "n": {"N": str(i * 1.5)},
        "s": {"S": f"name {i} é"},
        "flag": {"BOOL": i % 2 == 0},
        "tags": {"SS": [f"t{i % 3}", "x"]},
        "nested": {"M": {"l": {"L": [{"N": str(i)}, {"NULL": True}]}}},
        "blob": {"B": bytes([i % 256]) * 3},
    }


def canonical(item: dict[str, Any]) -> dict[str, Any]:
    """B values as base64 text whatever path read them, set order ignored: comparable items."""

    def value(v: Any) -> Any:
        if isinstance(v, dict):
            ((tag, inner),) = v.items()
            if tag == "B":
                return {"B": inner if isinstance(inner, str) else base64.b64encode(inner).decode()}
            if tag == "BS":
                return {"BS": sorted(x if isinstance(x, str) else base64.b64encode(x).decode() for x in inner)}
            if tag in ("SS", "NS"):
                return {tag: sorted(inner)}
            if tag == "M":
                return {"M": {k: value(x) for k, x in inner.items()}}
            if tag == "L":
                return {"L": [value(x) for x in inner]}
        return v

    return {k: value(v) for k, v in item.items()}


def key_of(item: dict[str, Any]) -> tuple[str, str]:
    c = canonical(item)
    return (c["pk"]["S"], c["sk"]["B"])


@pytest.fixture
def seeded(aws_url: str) -> Iterator[tuple[str, str]]:
    client = dynamodb_client(AwsConfig(endpoint_url=aws_url, fast_path=False))
    client.create_table(
        TableName="Mixed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "B"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    for start in range(0, ITEMS, 25):
        client.batch_write_item(
            RequestItems={"Mixed": [{"PutRequest": {"Item": make_item(i)}} for i in range(start, start + 25)]}
        )
    yield aws_url, "Mixed"


def client_for(url: str, fast: bool) -> DynamoDBClient:
    return dynamodb_client(AwsConfig(endpoint_url=url, fast_path=fast))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "boto3"])
def test_all_segments_together_return_every_item_exactly_once(seeded: tuple[str, str], fast: bool) -> None:
    url, table = seeded
    client = client_for(url, fast)
    pages: list[Page] = []
    for segment in range(4):
        pages.extend(scan_segment(client, table, segment, 4, None, limit=40))
    got = [canonical(dict(item)) for page in pages for item in page.items]
    expected = [canonical(make_item(i)) for i in range(ITEMS)]
    assert sorted(got, key=lambda i: (i["pk"]["S"], i["sk"]["B"])) == sorted(
        expected, key=lambda i: (i["pk"]["S"], i["sk"]["B"])
    )
    for segment in range(4):
        mine = [p for p in pages if p.segment == segment]
        assert mine[-1].resume_from is None
        assert all(p.resume_from is not None for p in mine[:-1])


def test_the_fast_path_keeps_binary_values_as_base64_text(seeded: tuple[str, str]) -> None:
    url, table = seeded
    fast = next(iter(scan_segment(client_for(url, True), table, 0, 1, None, limit=5)))
    plain = next(iter(scan_segment(client_for(url, False), table, 0, 1, None, limit=5)))
    assert isinstance(fast.items[0]["blob"]["B"], str)
    assert isinstance(plain.items[0]["blob"]["B"], bytes)
    assert [canonical(dict(i)) for i in fast.items] == [canonical(dict(i)) for i in plain.items]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "boto3"])
def test_a_segment_resumes_exactly_after_its_last_key(seeded: tuple[str, str], fast: bool) -> None:
    url, table = seeded
    client = client_for(url, fast)
    whole = [key_of(dict(i)) for p in scan_segment(client, table, 1, 3, None, limit=25) for i in p.items]
    pages = scan_segment(client, table, 1, 3, None, limit=25)
    first, second = next(pages), next(pages)
    resume = second.resume_from
    assert resume is not None
    assert isinstance(resume["sk"]["B"], str)  # a position leaves as plain JSON, storable as jsonb
    rest = [key_of(dict(i)) for p in scan_segment(client, table, 1, 3, resume, limit=25) for i in p.items]
    before = [key_of(dict(i)) for p in (first, second) for i in p.items]
    assert before + rest == whole
    assert len(set(whole)) == len(whole) > 50


def test_the_rate_limiter_is_charged_what_each_page_consumed(seeded: tuple[str, str]) -> None:
    url, table = seeded
    limiter = RateLimiter(1.0, burst=1000.0, clock=lambda: 0.0)
    pages = list(scan_segment(client_for(url, True), table, 0, 1, None, limit=50, rate_limiter=limiter))
    assert len(pages) >= ITEMS // 50
    assert limiter.balance <= 1000.0 - len(pages) * 0.5  # every page cost at least half a unit


def test_describe_table_reports_keys_counts_and_stream(seeded: tuple[str, str]) -> None:
    url, table = seeded
    info = describe_table(client_for(url, True), table)
    assert info.name == "Mixed" and info.arn.endswith(":table/Mixed")
    assert (info.partition_key.name, info.partition_key.type) == ("pk", "S")
    assert info.sort_key is not None and (info.sort_key.name, info.sort_key.type) == ("sk", "B")
    assert info.key_names == ("pk", "sk")
    assert info.item_count == ITEMS
    assert info.stream_enabled and info.stream_view_type == "NEW_IMAGE"
    assert info.stream_arn and info.stream_arn.startswith(info.arn + "/stream/")


def test_a_table_without_stream_and_a_missing_table(aws_url: str) -> None:
    client = client_for(aws_url, True)
    client.create_table(
        TableName="Plain",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    info = describe_table(client, "Plain")
    assert info.sort_key is None and not info.stream_enabled and info.stream_view_type is None
    assert list(scan_segment(client, "Plain", 0, 1, None)) == [Page(segment=0, items=[], resume_from=None)]
    with pytest.raises(SourceError, match="Nope"):
        describe_table(client, "Nope")
    with pytest.raises(SourceError, match="Nope"):
        list(scan_segment(client, "Nope", 0, 1, None))
