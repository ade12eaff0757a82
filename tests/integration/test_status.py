"""`ddbrepl status`: backfill progress, shards, last sequence, lag, leases and dead letters, from the control schema."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import psycopg

from ddbrepl.state import leases
from tests.helpers import EMPLOYEES, create_table, ddbrepl, put_items

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Employees/stream/2026-11-25T00:00:00.000"


def test_status_after_backfill_and_with_checkpoints(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")])
    put_items(aws_url, "Employees", [
        {"Id": Decimal(1), "empName": "Akua", "empDepartment": "Sales"},
        {"Id": Decimal(2), "empName": "Kofi", "empDepartment": "Engineering"},  # too long: a dead letter
        {"Id": Decimal(3), "empName": "Ama"},
    ])
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", EMPLOYEES]
    ddbrepl(*base, "init-schema")
    before = json.loads(ddbrepl(*base, "status", "--output", "json").stdout)
    assert before[0]["backfill"] is None and before[0]["stream"] is None and before[0]["lag_seconds"] is None
    ddbrepl(*base, "backfill", "--table", "Employees", "--segments", "2", "--no-progress")

    (doc,) = json.loads(ddbrepl(*base, "status", "--output", "json").stdout)
    assert doc["table"] == "Employees"
    assert doc["mappings"] == [{"mapping": "employees", "target": "public.Employees"}]
    bf = doc["backfill"]
    assert (bf["state"], bf["kind"], bf["items"], bf["total_items"]) == ("finished", "scan", 3, 3)
    assert bf["segments"] == {"total": 2, "done": 2, "claimed": 0, "items": 3}
    assert doc["dead_letters"] == {"employees": 1}
    assert doc["last_error"].startswith("dead letter: column 'Department'")
    assert doc["shards"] == {"open": 0, "finished": 0, "detail": []}

    # Checkpoints as the tail runner writes them: a finished parent, an open child leased by a live worker.
    pg.execute("INSERT INTO ddbrepl.streams (source_table, stream_arn, view_type, last_error)"
               " VALUES ('Employees', %s, 'NEW_IMAGE', 'GetRecords of shard-b was throttled')", (ARN,))
    pg.execute("INSERT INTO ddbrepl.checkpoints (stream_arn, shard_id, source_table, parent_shard_id, sequence,"
               " finished, records, last_event_at) VALUES"
               " (%s, 'shard-a', 'Employees', NULL, 100000000000000000000001, true, 10, now() - interval '1 hour'),"
               " (%s, 'shard-b', 'Employees', 'shard-a', 200000000000000000000007, false, 4,"
               "  now() - interval '90 seconds')", (ARN, ARN))
    pg.execute("INSERT INTO ddbrepl.leases (stream_arn, shard_id, owner, epoch, expires_at)"
               " VALUES (%s, 'shard-b', 'host-1:42', 3, now() + interval '1 minute')", (ARN,))
    assert leases.announce(pg, "host-1:42")  # this session stands in for the worker's own: it is present
    (doc,) = json.loads(ddbrepl(*base, "status", "--output", "json").stdout)
    assert doc["stream"]["arn"] == ARN
    assert (doc["shards"]["open"], doc["shards"]["finished"]) == (1, 1)
    assert doc["last_sequence"] == "200000000000000000000007"
    assert 90 <= doc["lag_seconds"] < 150
    assert doc["lease_owners"] == ["host-1:42"]
    assert doc["last_error"] == "GetRecords of shard-b was throttled"
    child = next(s for s in doc["shards"]["detail"] if s["shard_id"] == "shard-b")
    assert (child["parent"], child["records"], child["owner"], child["epoch"]) == ("shard-a", 4, "host-1:42", 3)

    text = ddbrepl(*base, "status").stdout
    assert "backfill: finished (scan), 3/3 items, 2/2 segments done" in text
    assert "shards: 1 open, 1 finished; last sequence 200000000000000000000007" in text
    assert "shard-b: 4 records, sequence 200000000000000000000007, leased by host-1:42 (epoch 3)" in text
    assert "dead letters: 1 open (employees: 1)" in text
    pg.execute("SELECT pg_advisory_unlock_all()")  # the worker's session ends (kill -9): its lease is not live
    assert "shard-b: 4 records, sequence 200000000000000000000007, no live lease" in ddbrepl(*base, "status").stdout


def test_status_after_tail(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")], stream="NEW_IMAGE")
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", EMPLOYEES]
    ddbrepl(*base, "init-schema")
    put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": f"n{i}"} for i in range(5)])
    ddbrepl(*base, "tail", "--until-idle", "--no-progress")
    (doc,) = json.loads(ddbrepl(*base, "status", "--output", "json").stdout)
    arn = pg.execute("SELECT stream_arn FROM ddbrepl.streams WHERE source_table = 'Employees'").fetchone()
    assert arn is not None and doc["stream"]["arn"] == arn[0]
    assert (doc["shards"]["open"], doc["shards"]["finished"]) == (1, 0)  # moto's one shard never closes
    (shard,) = doc["shards"]["detail"]
    assert shard["records"] == 5 and shard["sequence"] == doc["last_sequence"] is not None
    assert doc["lag_seconds"] is not None and doc["lag_seconds"] >= 0
    assert doc["lease_owners"] == []  # a graceful exit gives the leases back
    assert doc["backfill"] is None and doc["dead_letters"] == {} and doc["last_error"] is None
