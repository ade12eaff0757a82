"""`ddbrepl backfill --source …` from a DynamoDB export on moto S3 + real PostgreSQL, through the real CLI:
exact tables (JSON and ION), incremental exports on top, kill -9 and resume, bad files, `--source export`."""

from __future__ import annotations

import base64
import gzip
import random
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import psycopg
import pytest

from tests.fakes.exports import change_line, write_export
from tests.helpers import (
    MIXED,
    SERIALIZER,
    cli_base,
    create_table,
    ddbrepl,
    differences,
    expected_table,
    mixed_item,
    mixed_mapping,
    put_items,
    start_ddbrepl,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "exports"
EXPORT_TIME = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)


def base(aws_url: str, pg_url: str) -> list[str]:
    return cli_base(aws_url, pg_url, MIXED)


def items(n: int, seed: int = 30_000) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [mixed_item(i, rng) for i in range(n)]


def as_export_json(value: Any) -> Any:
    """A serialized attribute value the way a JSON export writes it: B and BS as base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: as_export_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_export_json(v) for v in value]
    return value


def image(item: dict[str, Any]) -> dict[str, Any]:
    return {k: as_export_json(SERIALIZER.serialize(v)) for k, v in item.items()}


def keys_of(item: dict[str, Any]) -> dict[str, Any]:
    return {k: as_export_json(SERIALIZER.serialize(item[k])) for k in ("pk", "sk")}


@pytest.fixture
def s3(aws_url: str) -> S3Client:
    client: S3Client = boto3.client("s3", endpoint_url=aws_url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def run_state(pg: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = pg.execute("SELECT source, point_in_time, finished_at IS NOT NULL, items FROM ddbrepl.backfills "
                     "WHERE source_table = 'Mixed'").fetchone()
    assert row is not None
    return tuple(row)


def loaded(pg: psycopg.Connection[Any]) -> int:
    row = pg.execute("SELECT coalesce(sum(items), 0) FROM ddbrepl.backfill_segments WHERE source_table = 'Mixed'"
                     ).fetchone()
    assert row is not None
    return int(row[0])


def assert_exact(pg: psycopg.Connection[Any], expected: list[dict[str, Any]]) -> None:
    mapping = mixed_mapping()
    assert expected_table(pg, mapping, expected) == len(expected)
    assert differences(pg, mapping) == (0, 0)
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)


@pytest.mark.parametrize("fmt", ["DYNAMODB_JSON", "ION"])
def test_full_export_of_30000_mixed_items_is_exact(fmt: Any, s3: S3Client, aws_url: str, pg_url: str,
                                                   pg: psycopg.Connection[Any]) -> None:
    data = items(30_000)
    layout = write_export(s3, BUCKET, "tables/mixed", [image(i) for i in data], files=7, fmt=fmt,
                          export_time=EXPORT_TIME)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    out = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", layout.url, "--no-progress")
    assert "backfill of Mixed finished: 30,000 items" in out.stdout
    assert "7 file(s)" in out.stdout and layout.url in out.stdout
    assert_exact(pg, data)
    assert pg.execute("SELECT count(*) FROM mixed WHERE _ddb_seq IS NOT NULL").fetchone() == (0,)
    assert run_state(pg) == (layout.url, EXPORT_TIME, True, 30_000)
    names = [r[0] for r in pg.execute("SELECT name FROM ddbrepl.backfill_segments WHERE done ORDER BY segment")]
    assert names == list(layout.data_keys)

    again = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", layout.url)
    assert "already finished" in again.stdout


def test_incremental_export_on_top_is_exact(s3: S3Client, aws_url: str, pg_url: str,
                                            pg: psycopg.Connection[Any]) -> None:
    data = items(3_000, seed=7)
    full = write_export(s3, BUCKET, "t", [image(i) for i in data], files=3, export_time=EXPORT_TIME)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    later = EXPORT_TIME + timedelta(minutes=30)
    rng = random.Random(8)
    changes: list[dict[str, Any]] = []
    final = {(i["pk"], i["sk"]): i for i in data}
    t0 = int(EXPORT_TIME.timestamp() * 1_000_000)

    # an increment before the full export is loaded is refused
    first_inc = write_export(s3, BUCKET, "t", [], incremental_changes=[change_line(keys_of(data[0]))], files=1,
                             export_time=later)
    proc = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", first_inc.url, check=False)
    assert proc.returncode == 1 and "needs a finished full backfill" in proc.stderr
    ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", full.url, "--no-progress")

    for n, item in enumerate(data[:1_000]):
        key = (item["pk"], item["sk"])
        if n % 4 == 0:  # deleted
            changes.append(change_line(keys_of(item), None, image(item), micros=t0 + 10 + n))
            del final[key]
        elif n % 4 == 1:  # modified twice; the newer change sits first, and in another file (round-robin of 4)
            newer = {**item, "title": f"v2-{n}", "qty": Decimal(n)}
            older = {**item, "title": f"v1-{n}"}
            changes.append(change_line(keys_of(item), image(newer), image(older), micros=t0 + 2_000 + n))
            changes.append(change_line(keys_of(item), image(older), image(item), micros=t0 + 1_000 + n))
            final[key] = newer
        elif n % 4 == 2:  # deleted, then put back (the put is newer, in the same file: 4 lines later)
            again = mixed_item(n + 50_000, rng) | {"pk": item["pk"], "sk": item["sk"]}
            changes.append(change_line(keys_of(item), image(again), micros=t0 + 5_000 + n))
            filler = data[2_000 + n]  # three unchanged rewrites of another item, so the delete lands 4 lines on
            changes += [change_line(keys_of(filler), image(filler), image(filler), micros=t0 + 1 + n)] * 3
            changes.append(change_line(keys_of(item), None, image(item), micros=t0 + 4_000 + n))
            final[key] = again
    for n in range(500):  # new items
        new = mixed_item(100_000 + n, rng)
        changes.append(change_line(keys_of(new), image(new), micros=t0 + 7_000 + n))
        final[(new["pk"], new["sk"])] = new
    inc = write_export(s3, BUCKET, "t", [], incremental_changes=changes, files=4, export_time=later)

    out = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", inc.url, "--no-progress")
    assert "finished" in out.stdout and "250 deleted" in out.stdout, out.stdout
    assert_exact(pg, list(final.values()))
    assert run_state(pg)[:3] == (inc.url, later, True)
    assert pg.execute("SELECT count(*) FROM ddbrepl.tombstones").fetchone() == (0,)

    # an increment that starts after what is loaded leaves a gap: refused, nothing changes
    gap = write_export(s3, BUCKET, "t", [], incremental_changes=[change_line(keys_of(data[5]))], files=1,
                       export_time=later + timedelta(hours=3))
    proc = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", gap.url, check=False)
    assert proc.returncode == 1 and "changes in between would be missing" in proc.stderr
    assert run_state(pg)[:3] == (inc.url, later, True)


def other_sessions(pg: psycopg.Connection[Any]) -> int:
    """Client sessions on the test database besides ``pg``'s own."""
    row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("processes", [1, 2])
def test_killed_mid_load_then_resumed_is_exact(processes: int, s3: S3Client, aws_url: str, pg_url: str,
                                               pg: psycopg.Connection[Any]) -> None:
    data = items(30_000, seed=9)
    layout = write_export(s3, BUCKET, "k", [image(i) for i in data], files=3, export_time=EXPORT_TIME)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    args = [*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", layout.url,
            "--workers", str(processes), "--processes", str(processes), "--no-progress"]
    proc = start_ddbrepl(*args)
    deadline = time.monotonic() + 120
    while loaded(pg) < 5_000 and proc.poll() is None:  # a few chunks committed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    while other_sessions(pg):  # loader child processes die with their parent and close their sessions
        assert time.monotonic() < deadline, "a loader process outlived its parent"
        time.sleep(0.05)
    committed = loaded(pg)
    assert 0 < committed < len(data)
    assert pg.execute("SELECT count(*) FROM mixed").fetchone() == (committed,)
    inside = pg.execute("SELECT resume_key FROM ddbrepl.backfill_segments WHERE NOT done AND items > 0").fetchall()
    assert all(r[0]["chunk"] >= 1 for r in inside)

    out = ddbrepl(*args)
    resumed = int(re.search(r"finished: ([\d,]+) items", out.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert resumed == len(data) - committed  # no committed chunk was applied again
    assert loaded(pg) == len(data)
    assert_exact(pg, data)


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_bad_file_is_named_the_others_load_and_a_rerun_retries_it(
        damage: str, s3: S3Client, aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    data = items(4_000, seed=11)
    layout = write_export(s3, BUCKET, "bad", [image(i) for i in data], files=4, export_time=EXPORT_TIME)
    bad = layout.data_keys[2]
    good_body = s3.get_object(Bucket=BUCKET, Key=bad)["Body"].read()
    if damage == "truncated":
        broken = good_body[: len(good_body) // 2]
    else:
        middle = len(good_body) // 2
        broken = good_body[:middle] + bytes(b ^ 0x5A for b in good_body[middle:middle + 64]) + good_body[middle + 64:]
    s3.put_object(Bucket=BUCKET, Key=bad, Body=broken)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    args = [*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", layout.url, "--no-progress"]

    proc = ddbrepl(*args, check=False)
    assert proc.returncode == 1
    assert f"failed: export file s3://{BUCKET}/{bad}" in proc.stdout
    assert ("truncated" if damage == "truncated" else "not valid gzip data") in proc.stdout
    assert "Traceback" not in proc.stderr
    # Read (and reported) by one loader only, though two processes share the files.
    assert proc.stderr.count(f"ERROR ddbrepl.runners.export_files: export file s3://{BUCKET}/{bad}") == 1
    done = pg.execute("SELECT name FROM ddbrepl.backfill_segments WHERE done").fetchall()
    assert sorted(r[0] for r in done) == sorted(k for k in layout.data_keys if k != bad)
    assert run_state(pg)[2] is False
    others = sum(c for k, c in zip(layout.data_keys, layout.counts, strict=True) if k != bad)
    assert loaded(pg) == pg.execute("SELECT count(*) FROM mixed").fetchone()[0] >= others  # type: ignore[index]

    s3.put_object(Bucket=BUCKET, Key=bad, Body=good_body)  # the object is repaired: only it is read again
    out = ddbrepl(*args)
    assert "finished" in out.stdout and "1 file(s)" in out.stdout
    assert_exact(pg, data)


def test_source_export_end_to_end_on_moto_then_reseed(aws_url: str, pg_url: str, pg: psycopg.Connection[Any],
                                                     s3: S3Client) -> None:
    data = items(800, seed=13)
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")])
    put_items(aws_url, "Mixed", data)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    args = [*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", "export", "--export-bucket", BUCKET,
            "--no-progress"]
    proc = ddbrepl(*args, check=False)
    assert proc.returncode == 1 and "point-in-time recovery is not enabled" in proc.stderr
    boto3.client("dynamodb", endpoint_url=aws_url, region_name="us-east-1").update_continuous_backups(
        TableName="Mixed", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})

    before = datetime.now(UTC)
    out = ddbrepl(*args)
    assert "backfill of Mixed finished: 800 items" in out.stdout
    assert_exact(pg, data)
    source, first_point, finished, _ = run_state(pg)
    assert finished and source.startswith(f"s3://{BUCKET}/ddbrepl-exports/Mixed/")
    assert before - timedelta(seconds=5) <= first_point <= datetime.now(UTC)
    assert "already finished" in ddbrepl(*args).stdout

    # `tail` fell behind and the stream was trimmed: stale stream rows and checkpoints; re-seed from a new export
    pg.execute("UPDATE mixed SET title = 'stale', _ddb_seq = 42 WHERE sk < 10")
    pg.execute("INSERT INTO ddbrepl.checkpoints (stream_arn, shard_id, source_table, sequence) "
               "VALUES ('arn:stream', 'shard-1', 'Mixed', 100), ('arn:other', 'shard-9', 'Other', 7)")
    pg.execute("INSERT INTO ddbrepl.leases (stream_arn, shard_id, owner, epoch) VALUES ('arn:stream', 'shard-1', "
               "'w', 3)")
    more = [mixed_item(i, random.Random(i)) for i in range(800, 900)]
    put_items(aws_url, "Mixed", more)
    ddb = boto3.client("dynamodb", endpoint_url=aws_url, region_name="us-east-1")
    ddb.delete_item(TableName="Mixed", Key={"pk": {"S": data[5]["pk"]}, "sk": {"N": str(data[5]["sk"])}})
    proc = ddbrepl(*args[:-1], "--restart")
    assert "finished: 899 items" in proc.stdout
    assert_exact(pg, [i for i in data if i is not data[5]] + more)
    assert pg.execute("SELECT count(*) FROM mixed WHERE _ddb_seq IS NOT NULL").fetchone() == (0,)
    assert pg.execute("SELECT source_table FROM ddbrepl.checkpoints").fetchall() == [("Other",)]
    assert pg.execute("SELECT count(*) FROM ddbrepl.leases").fetchone() == (0,)
    new_source, new_point, finished, _ = run_state(pg)
    assert finished and new_source != source and new_point >= first_point


def test_gzip_of_members_and_empty_files_load(s3: S3Client, aws_url: str, pg_url: str,
                                              pg: psycopg.Connection[Any]) -> None:
    """Files AWS may write: an empty partition (0 bytes) and several gzip members in one object."""
    data = items(50, seed=17)
    layout = write_export(s3, BUCKET, "e", [image(i) for i in data], files=60, export_time=EXPORT_TIME)
    first = layout.data_keys[0]
    body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=first)["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=first, Body=gzip.compress(body[:1]) + gzip.compress(body[1:]))
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    out = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--source", layout.url, "--no-progress")
    assert "finished: 50 items" in out.stdout and "60 file(s)" in out.stdout
    assert_exact(pg, data)
