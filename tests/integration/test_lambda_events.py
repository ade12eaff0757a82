"""`ddbrepl apply-events` and the AWS Lambda handler, on real PostgreSQL (and moto's Secrets Manager)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ddbrepl import aws_lambda
from tests.helpers import ROOT, create_table, ddb, ddbrepl, put_items

EXAMPLE = ROOT / "tests" / "mappings" / "example"
SAMPLE = ROOT / "tests" / "events" / "aws_sample_stream_event.json"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2026-11-25T00:00:00.000"


def sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SAMPLE.read_text())
    return doc


def record(seq: str, name: str, ident: int, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Keys": {"Id": {"N": str(ident)}}, "SequenceNumber": seq, "SizeBytes": 10,
                            "StreamViewType": "NEW_IMAGE", "ApproximateCreationDateTime": 1764028800.0}
    if message is not None:
        body["NewImage"] = {"Id": {"N": str(ident)}, "Message": {"S": message}}
    return {"eventID": seq, "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": ARN, "dynamodb": body}


def rows(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return pg.execute("SELECT id, message, _ddb_seq FROM example_messages ORDER BY id").fetchall()


def init(pg_url: str) -> None:
    ddbrepl("--database-url", pg_url, "--mappings", str(EXAMPLE), "init-schema")


def test_apply_events_sample_insert_update_delete(pg_url: str, pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    init(pg_url)
    base = ["--database-url", pg_url, "--mappings", str(EXAMPLE), "apply-events"]
    event = sample()
    for n, expected in ((1, [(101, "New item!", 111)]), (2, [(101, "This item has changed", 222)]), (3, [])):
        path = tmp_path / f"first{n}.json"
        path.write_text(json.dumps({"Records": event["Records"][:n]}))
        out = ddbrepl(*base, str(path))
        assert "ExampleTableWithStream:" in out.stdout
        assert rows(pg) == expected
    out = ddbrepl(*base, "--output", "json", str(SAMPLE))
    assert json.loads(out.stdout)["tables"]["ExampleTableWithStream"]["deletes"] == 0  # already gone


def test_apply_events_dry_run_needs_no_database() -> None:
    out = ddbrepl("--mappings", str(EXAMPLE), "apply-events", "--dry-run", str(SAMPLE))
    lines = out.stdout.splitlines()
    assert lines[0] == "example -> public.example_messages: 2 upsert(s), 1 delete(s), 0 dead letter(s)"
    assert lines[1].split() == ["upsert", "INSERT", "seq", "111", '{"id":', "101,", '"message":', '"New', 'item!"}']
    assert "MODIFY seq 222" in lines[2] and "This item has changed" in lines[2]
    assert lines[3].split() == ["delete", "REMOVE", "seq", "333", "key", '{"id":', "101}"]
    doc = json.loads(ddbrepl("--mappings", str(EXAMPLE), "apply-events", "--dry-run", "--output", "json",
                             str(SAMPLE)).stdout)
    assert [op["op"] for op in doc["mappings"][0]["ops"]] == ["upsert", "upsert", "delete"]


def test_apply_events_unmapped_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    rec = record("1", "INSERT", 1, "x")
    rec["eventSourceARN"] = "arn:aws:dynamodb:us-east-1:1:table/Other/stream/x"
    path.write_text(json.dumps({"Records": [rec]}))
    proc = ddbrepl("--mappings", str(EXAMPLE), "apply-events", "--dry-run", str(path), check=False)
    assert proc.returncode == 1 and "no mapping reads table 'Other'" in proc.stderr
    out = ddbrepl("--mappings", str(EXAMPLE), "apply-events", "--dry-run", "--table", "ExampleTableWithStream",
                  str(path))
    assert "1 upsert(s)" in out.stdout


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Iterator[None]:
    init(pg_url)
    monkeypatch.setenv("DDBREPL_MAPPINGS", str(EXAMPLE))
    monkeypatch.setenv("DDBREPL_LOG_FORMAT", "text")
    handlers = logging.getLogger().handlers[:]
    aws_lambda.reset()
    yield
    aws_lambda.reset()
    logging.getLogger().handlers[:] = handlers


def batch() -> dict[str, Any]:
    return {"Records": [record("111", "INSERT", 101, "one"), record("222", "INSERT", 102, "two"),
                        record("333", "MODIFY", 101, "one, changed"),
                        record("444", "INSERT", 103, "a message far longer than the forty characters allowed")]}


def test_handler_applies_reports_failures_and_is_idempotent(lambda_env: None, monkeypatch: pytest.MonkeyPatch,
                                                            pg_url: str, pg: psycopg.Connection[Any]) -> None:
    monkeypatch.setenv("DDBREPL_DATABASE_URL", pg_url)
    # A real database failure in the middle of the batch: a trigger refuses the row of Id 102.
    pg.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RAISE EXCEPTION 'refused %', NEW.id; END$$")
    pg.execute("CREATE TRIGGER refuse BEFORE INSERT ON example_messages FOR EACH ROW WHEN (NEW.id = 102) "
               "EXECUTE FUNCTION refuse()")
    assert aws_lambda.handler(batch(), None) == {"batchItemFailures": [{"itemIdentifier": "111"}]}
    assert rows(pg) == []  # one transaction: nothing of the batch applied
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)

    pg.execute("DROP TRIGGER refuse ON example_messages")
    assert aws_lambda.handler(batch(), None) == {"batchItemFailures": []}
    expected = [(101, "one, changed", 333), (102, "two", 222)]
    assert rows(pg) == expected
    dead = pg.execute("SELECT column_name, origin, attempts, sequence FROM ddbrepl.dead_letters").fetchall()
    assert dead == [("message", "lambda", 1, 444)]

    # Lambda redelivers the same batch (a timeout after commit): same rows, the dead letter is not duplicated.
    assert aws_lambda.handler(batch(), None) == {"batchItemFailures": []}
    assert rows(pg) == expected
    assert pg.execute("SELECT count(*), max(attempts) FROM ddbrepl.dead_letters").fetchone() == (1, 2)

    # The server dropped the cached connection while the environment was frozen: reconnect, no failure.
    pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ddbrepl'"
               " AND pid <> pg_backend_pid()")
    later = {"Records": [record("555", "REMOVE", 102)]}
    assert aws_lambda.handler(later, None) == {"batchItemFailures": []}
    assert rows(pg) == [(101, "one, changed", 333)]


def test_handler_database_down_reports_first_sequence(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDBREPL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    event = batch()
    event["Records"] = event["Records"][1:]
    assert aws_lambda.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "222"}]}
    assert aws_lambda.handler({"Records": []}, None) == {"batchItemFailures": []}


def test_handler_reads_the_secret_once(lambda_env: None, monkeypatch: pytest.MonkeyPatch, pg_url: str,
                                       aws_url: str, pg: psycopg.Connection[Any]) -> None:
    info = conninfo_to_dict(pg_url)
    secret = {"username": info.get("user") or "postgres", "password": info.get("password") or "",
              "host": info.get("host") or "localhost", "port": int(info.get("port") or 5432),
              "dbname": info["dbname"], "engine": "postgres"}
    sm = boto3.client("secretsmanager", endpoint_url=aws_url, region_name="us-east-1")
    sm.create_secret(Name="ddbrepl/db", SecretString=json.dumps(secret))
    monkeypatch.setenv("DDBREPL_DATABASE_SECRET_ID", "ddbrepl/db")
    monkeypatch.setenv("DDBREPL_ENDPOINT_URL", aws_url)
    event = {"Records": [record("1", "INSERT", 7, "from a secret")]}
    assert aws_lambda.handler(event, None) == {"batchItemFailures": []}
    sm.delete_secret(SecretId="ddbrepl/db", ForceDeleteWithoutRecovery=True)
    again = copy.deepcopy(event)
    again["Records"][0]["dynamodb"]["NewImage"]["Message"]["S"] = "cached secret"
    assert aws_lambda.handler(again, None) == {"batchItemFailures": []}  # no second GetSecretValue
    assert rows(pg) == [(7, "cached secret", 1)]


def test_handler_reads_the_items_of_a_keys_only_stream(lambda_env: None, monkeypatch: pytest.MonkeyPatch,
                                                        pg_url: str, pg: psycopg.Connection[Any], aws_url: str) -> None:
    monkeypatch.setenv("DDBREPL_DATABASE_URL", pg_url)
    monkeypatch.setenv("DDBREPL_ENDPOINT_URL", aws_url)
    create_table(aws_url, "ExampleTableWithStream", [("Id", "N")], stream=None)
    put_items(aws_url, "ExampleTableWithStream", [{"Id": Decimal(101), "Message": "as it is now"},
                                                   {"Id": Decimal(102), "Message": "two"}])

    def keys_only(seq: str, name: str, ident: int) -> dict[str, Any]:
        rec = record(seq, name, ident)
        rec["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
        return rec

    # 101 inserted then modified; 102 inserted; 103 inserted then deleted before this batch ran (gone: a delete).
    event = {"Records": [keys_only("111", "INSERT", 101), keys_only("222", "INSERT", 102),
                         keys_only("333", "MODIFY", 101), keys_only("444", "INSERT", 103)]}
    assert aws_lambda.handler(event, None) == {"batchItemFailures": []}
    assert rows(pg) == [(101, "as it is now", 333), (102, "two", 222)]
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)
    ddb(aws_url).delete_item(TableName="ExampleTableWithStream", Key={"Id": {"N": "102"}})
    assert aws_lambda.handler({"Records": [keys_only("555", "REMOVE", 102)]}, None) == {"batchItemFailures": []}
    assert rows(pg) == [(101, "as it is now", 333)]
