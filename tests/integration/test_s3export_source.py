"""The s3export source against S3 and DynamoDB on a moto server: AWS-layout exports written by the fake (JSON, ION,
incremental), moto's own ExportTableToPointInTime, and every way a file can be bad."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from ddbrepl.errors import SourceError
from ddbrepl.records import RawChange
from ddbrepl.sources import s3export
from ddbrepl.sources.s3export import ExportInfo, ExportProgress
from tests.fakes.exports import change_line, mixed_items, write_export

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

BUCKET = "exports"
KEYS = ("pk", "sk")


@pytest.fixture
def s3(aws_url: str) -> S3Client:
    client: S3Client = boto3.client("s3", endpoint_url=aws_url)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def ddb(aws_url: str) -> DynamoDBClient:
    client: DynamoDBClient = boto3.client("dynamodb", endpoint_url=aws_url)
    return client


def read_all(s3: S3Client, info: ExportInfo, **kwargs: Any) -> list[RawChange]:
    return [c for f in info.files for chunk in s3export.iter_file(s3, info, f, KEYS, **kwargs) for c in chunk]


def normal(av: Any) -> Any:
    """N as Decimal, B as bytes, sets as frozensets: equal when DynamoDB would call the values equal."""
    ((tag, raw),) = av.items()
    if tag == "N":
        return ("N", Decimal(raw))
    if tag == "B":
        return ("B", raw if isinstance(raw, bytes) else base64.b64decode(raw))
    if tag == "NS":
        return ("NS", frozenset(Decimal(v) for v in raw))
    if tag == "BS":
        return ("BS", frozenset(v if isinstance(v, bytes) else base64.b64decode(v) for v in raw))
    if tag == "SS":
        return ("SS", frozenset(raw))
    if tag == "M":
        return ("M", {k: normal(v) for k, v in raw.items()})
    if tag == "L":
        return ("L", [normal(v) for v in raw])
    return (tag, raw)


def by_key(images: list[Any]) -> dict[tuple[str, str], Any]:
    return {(i["pk"]["S"], i["sk"]["N"]): {k: normal(v) for k, v in i.items()} for i in images}


def test_aws_layout_json_export_reads_back_exactly(s3: S3Client) -> None:
    items = mixed_items(1000)
    layout = write_export(s3, BUCKET, "team/exports", items, files=4)
    info = s3export.locate_export(s3, layout.url)

    assert (info.layout, info.format, info.export_type, info.view_type) == ("aws", "DYNAMODB_JSON", "FULL_EXPORT", None)
    assert info.export_time == layout.export_time
    assert (info.item_count, info.export_arn, info.prefix) == (1000, layout.export_arn, "team/exports")
    assert [f.key for f in info.files] == list(layout.data_keys)
    assert all(f.key.startswith(layout.folder + "data/") and f.key.endswith(".json.gz") for f in info.files)
    assert [f.item_count for f in info.files] == [250] * 4

    chunks = [chunk for f in info.files for chunk in s3export.iter_file(s3, info, f, KEYS, chunk_size=64)]
    assert max(len(c) for c in chunks) == 64
    changes = [c for chunk in chunks for c in chunk]
    assert sorted((c.event, c.sequence, c.old_image) for c in changes)[0] == ("INSERT", None, None)
    assert [c.new_image for c in changes] == [items[i] for f in range(4) for i in range(f, 1000, 4)]  # untouched
    assert all(c.keys == {"pk": c.new_image["pk"], "sk": c.new_image["sk"]} for c in changes if c.new_image)
    assert len(read_all(s3, info, verify_md5=True)) == 1000


def test_ion_export_reads_back_the_same_values(s3: S3Client) -> None:
    items = mixed_items(500)
    info = s3export.locate_export(s3, write_export(s3, BUCKET, "ion", items, files=3, fmt="ION").url)
    assert info.format == "ION" and all(f.key.endswith(".ion.gz") for f in info.files)
    changes = read_all(s3, info, verify_md5=True)
    assert by_key([c.new_image for c in changes]) == by_key(items)
    assert all(isinstance(c.new_image["blob"]["B"], bytes) for c in changes if c.new_image and "blob" in c.new_image)
    big = next(c.new_image for c in changes if c.new_image and "big" in c.new_image)
    assert big["big"] == {"N": "9" * 38}  # written exactly, all 38 digits


@pytest.mark.parametrize("fmt", ["DYNAMODB_JSON", "ION"])
def test_incremental_export_yields_changes(s3: S3Client, fmt: Any) -> None:
    a, b, c = ({"pk": {"S": k}, "sk": {"N": "1"}} for k in "abc")
    lines = [
        change_line(a, {**a, "v": {"N": "1"}}, micros=1_700_000_000_000_001),
        change_line(b, {**b, "v": {"N": "2"}}, {**b, "v": {"N": "1"}}, micros=1_700_000_000_000_002),
        change_line(c, None, {**c, "v": {"S": "old"}}, micros=1_700_000_000_000_003),
    ]
    when = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    layout = write_export(s3, BUCKET, "inc", [], files=2, fmt=fmt, incremental_changes=lines, export_time=when)
    assert all(k.startswith("inc/AWSDynamoDB/data/") for k in layout.data_keys)  # the shared data folder

    info = s3export.locate_export(s3, layout.url)
    assert (info.incremental, info.view_type, info.export_time, info.item_count) == (
        True,
        "NEW_AND_OLD_IMAGES",
        when,
        3,
    )
    changes = {ch.keys["pk"]["S"]: ch for ch in read_all(s3, info)}
    assert {k: ch.event for k, ch in changes.items()} == {"a": "INSERT", "b": "MODIFY", "c": "REMOVE"}
    assert normal({"M": changes["b"].new_image})[1]["v"] == ("N", Decimal(2))
    assert normal({"M": changes["b"].old_image})[1]["v"] == ("N", Decimal(1))
    assert changes["c"].new_image is None and changes["c"].old_image is not None
    assert changes["c"].approx_time == datetime(2023, 11, 14, 22, 13, 20, 3, tzinfo=UTC)
    assert all(ch.sequence is None for ch in changes.values())


def test_locate_from_prefix_summary_key_or_relative_manifest_keys(s3: S3Client) -> None:
    layout = write_export(s3, BUCKET, "p/q", mixed_items(20), files=2)
    direct = s3export.locate_export(s3, layout.url)
    assert s3export.locate_export(s3, f"s3://{BUCKET}/p/q/") == direct
    assert s3export.locate_export(s3, f"s3://{BUCKET}/p/q/AWSDynamoDB") == direct
    assert s3export.locate_export(s3, f"s3://{BUCKET}/{layout.summary_key}") == direct

    # If an export's manifests held keys relative to s3Prefix, the reader re-bases them all.
    summary = orjson.loads(s3.get_object(Bucket=BUCKET, Key=layout.summary_key)["Body"].read())
    files = s3.get_object(Bucket=BUCKET, Key=layout.folder + "manifest-files.json")["Body"].read()
    summary["manifestFilesS3Key"] = summary["manifestFilesS3Key"].removeprefix("p/q/")
    s3.put_object(Bucket=BUCKET, Key=layout.summary_key, Body=orjson.dumps(summary))
    s3.put_object(Bucket=BUCKET, Key=layout.folder + "manifest-files.json", Body=files.replace(b'"p/q/', b'"'))
    assert summary["manifestFilesS3Key"].startswith("AWSDynamoDB/")  # no such object at the bucket's root
    rebased = s3export.locate_export(s3, layout.url)
    assert rebased.files == direct.files


def test_a_prefix_with_two_exports_is_ambiguous(s3: S3Client) -> None:
    write_export(s3, BUCKET, "two", mixed_items(3), files=1)
    write_export(s3, BUCKET, "two", mixed_items(3), files=1)
    with pytest.raises(SourceError, match=r"exactly one export folder .* found 2"):
        s3export.locate_export(s3, f"s3://{BUCKET}/two/")
    with pytest.raises(SourceError, match="no DynamoDB export"):
        s3export.locate_export(s3, f"s3://{BUCKET}/nothing/AWSDynamoDB/x/")
    with pytest.raises(SourceError, match="not an s3:// address"):
        s3export.locate_export(s3, "/tmp/export")


def moto_table(ddb: DynamoDBClient, name: str, *, pitr: bool = True) -> str:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    if pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return name


def test_real_moto_export_end_to_end(s3: S3Client, ddb: DynamoDBClient) -> None:
    moto_table(ddb, "Orders")
    items = mixed_items(300)
    for item in items:  # through the client, B as bytes, as a real application writes them
        wire = orjson.loads(orjson.dumps(item))
        for name, av in wire.items():
            if "B" in av:
                wire[name] = {"B": base64.b64decode(av["B"])}
            if "BS" in av:
                wire[name] = {"BS": [base64.b64decode(v) for v in av["BS"]]}
        ddb.put_item(TableName="Orders", Item=wire)
    seen: list[ExportProgress] = []
    before = datetime.now(UTC)

    info = s3export.start_export(ddb, s3, "Orders", BUCKET, progress=seen.append, poll_s=0.1, timeout_s=60)

    assert seen and seen[-1].status == "COMPLETED" and seen[-1].item_count == 300
    assert (info.layout, info.format, info.export_type) == ("moto", "DYNAMODB_JSON", "FULL_EXPORT")
    assert info.item_count == info.files[0].item_count == 300  # DescribeExport's ItemCount: moto writes one file
    assert info.export_arn == seen[-1].export_arn and info.table_arn and info.table_arn.endswith("table/Orders")
    assert before <= info.export_time <= datetime.now(UTC)  # moto gives no ExportTime: the request's time
    assert len(info.files) == 1 and info.files[0].key.endswith(".gz")
    assert by_key([c.new_image for c in read_all(s3, info)]) == by_key(items)

    # the same export, found again from its ARN or its folder
    again = s3export.describe_export(ddb, s3, info.export_arn or "", requested_at=info.export_time)
    assert again == info
    by_folder = s3export.locate_export(s3, info.url, fallback_time=info.export_time)
    assert [f.key for f in by_folder.files] == [f.key for f in info.files] and by_folder.item_count is None
    found = s3export.locate_export(s3, info.url)  # no time given: the data object's LastModified
    assert before.replace(microsecond=0) <= found.export_time <= datetime.now(UTC)


def test_export_without_pitr_says_how_to_enable_it(s3: S3Client, ddb: DynamoDBClient) -> None:
    moto_table(ddb, "NoPitr", pitr=False)
    with pytest.raises(SourceError, match="point-in-time recovery is not enabled") as caught:
        s3export.start_export(ddb, s3, "NoPitr", BUCKET, poll_s=0.1, timeout_s=10)
    assert "update-continuous-backups" in str(caught.value)


def damaged(s3: S3Client, key: str, change: Callable[[bytes], bytes]) -> None:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=change(body))


def corrupt(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes(b ^ 0x5A for b in blob[middle : middle + 64]) + blob[middle + 64 :]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (corrupt, "is not valid gzip data"),
        (lambda blob: blob[: len(blob) * 2 // 3], "is truncated"),
        (
            lambda blob: gzip.compress(gzip.decompress(blob).rsplit(b"\n", 2)[0] + b"\n"),
            "holds 249 items, but the manifest says 250",
        ),
        (lambda blob: gzip.compress(b'{"Item": {"pk": {"S": "x"}, "sk": {"N": "1"}}}\n\n{"Item": {"pk": \n'), "line 3"),
        (lambda blob: gzip.compress(b'{"Item": {"pk": {"S": "x"}}}\n'), "line 1: item lacks key attribute 'sk'"),
    ],
    ids=["corrupt", "truncated", "count", "bad-json", "no-key"],
)
def test_a_bad_file_is_named_and_the_others_still_read(
    s3: S3Client, change: Callable[[bytes], bytes], message: str
) -> None:
    layout = write_export(s3, BUCKET, "bad", mixed_items(1000), files=4)
    bad = layout.data_keys[2]
    damaged(s3, bad, change)
    info = s3export.locate_export(s3, layout.url)
    for datafile in info.files:
        if datafile.key == bad:
            with pytest.raises(SourceError, match=message) as caught:
                list(s3export.iter_file(s3, info, datafile, KEYS))
            assert f"s3://{BUCKET}/{bad}" in str(caught.value)
        else:
            assert sum(len(c) for c in s3export.iter_file(s3, info, datafile, KEYS)) == 250


def test_a_bad_file_yields_no_final_chunk(s3: S3Client) -> None:
    """Every check runs before the last chunk, so a runner never marks a bad file done with it."""
    layout = write_export(s3, BUCKET, "late", mixed_items(400), files=1)
    damaged(s3, layout.data_keys[0], lambda blob: blob[:-12])  # the whole body, no gzip trailer
    info = s3export.locate_export(s3, layout.url)
    got: list[int] = []
    with pytest.raises(SourceError, match="truncated"):
        for chunk in s3export.iter_file(s3, info, info.files[0], KEYS, chunk_size=150):
            got.append(len(chunk))
    assert got == [150, 150]


def test_md5_is_checked_on_request(s3: S3Client) -> None:
    layout = write_export(s3, BUCKET, "md5", mixed_items(50), files=1)
    damaged(s3, layout.data_keys[0], lambda blob: gzip.compress(gzip.decompress(blob), compresslevel=1))
    info = s3export.locate_export(s3, layout.url)
    assert len(read_all(s3, info)) == 50  # same lines, other bytes: fine unless asked
    with pytest.raises(SourceError, match="differs from the manifest's md5Checksum"):
        read_all(s3, info, verify_md5=True)


def test_empty_partition_files_are_empty(s3: S3Client) -> None:
    layout = write_export(s3, BUCKET, "sparse", mixed_items(2), files=4)
    info = s3export.locate_export(s3, layout.url)
    assert [f.item_count for f in info.files] == [1, 1, 0, 0]
    assert [sum(len(c) for c in s3export.iter_file(s3, info, f, KEYS)) for f in info.files] == [1, 1, 0, 0]
    with pytest.raises(SourceError, match="does not exist"):
        s3.delete_object(Bucket=BUCKET, Key=layout.data_keys[0])
        list(s3export.iter_file(s3, info, info.files[0], KEYS))


def test_an_unfinished_aws_export_is_refused(s3: S3Client) -> None:
    """AWS writes _started first and the manifests last: data files alone are not a whole export."""
    layout = write_export(s3, BUCKET, "running", mixed_items(10), files=2)
    s3.delete_object(Bucket=BUCKET, Key=layout.summary_key)
    with pytest.raises(SourceError, match="is not complete: it has _started"):
        s3export.locate_export(s3, layout.url)


def test_a_failed_moto_export_is_reported(s3: S3Client, ddb: DynamoDBClient) -> None:
    moto_table(ddb, "Lost")
    with pytest.raises(SourceError, match="failed: S3NoSuchBucket"):
        s3export.start_export(ddb, s3, "Lost", "no-such-bucket", poll_s=0.1, timeout_s=10)


class FakeDescribeExport:
    """A fake at the boto3 client boundary: DescribeExport as AWS answers it, with ``ExportManifest`` — moto's
    answer lacks that field, so no emulator can produce this case. The export itself is real objects on moto S3."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.description = description
        self.calls = 0

    def describe_export(self, ExportArn: str) -> dict[str, Any]:  # boto3 spells the parameter so
        self.calls += 1
        status = "IN_PROGRESS" if self.calls < 3 else self.description["ExportStatus"]
        return {"ExportDescription": {**self.description, "ExportArn": ExportArn, "ExportStatus": status}}


def test_describe_export_follows_export_manifest(s3: S3Client) -> None:
    layout = write_export(s3, BUCKET, "arn", mixed_items(40), files=2, fmt="ION")
    fake = FakeDescribeExport(
        {"ExportStatus": "COMPLETED", "S3Bucket": BUCKET, "S3Prefix": "arn", "ExportManifest": layout.summary_key}
    )
    seen: list[ExportProgress] = []
    done = s3export.wait_export(fake, layout.export_arn, progress=seen.append, sleep=lambda s: None)  # type: ignore[arg-type]
    assert [p.status for p in seen] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"] and done == seen[-1]
    info = s3export.describe_export(fake, s3, layout.export_arn)  # type: ignore[arg-type]
    assert info == s3export.locate_export(s3, layout.url)
    assert (info.layout, info.format, info.export_arn, len(info.files)) == ("aws", "ION", layout.export_arn, 2)
    relative = FakeDescribeExport({**fake.description, "ExportManifest": layout.summary_key.removeprefix("arn/")})
    relative.calls = 3
    assert s3export.describe_export(relative, s3, layout.export_arn) == info  # type: ignore[arg-type]


def test_wait_export_gives_up_after_its_timeout() -> None:
    fake = FakeDescribeExport({"ExportStatus": "IN_PROGRESS", "S3Bucket": BUCKET})
    with pytest.raises(SourceError, match="still IN_PROGRESS after"):
        s3export.wait_export(fake, "arn:x", timeout_s=0.0, sleep=lambda s: None)  # type: ignore[arg-type]
