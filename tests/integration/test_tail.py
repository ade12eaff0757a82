"""`ddbrepl tail` on moto + real PostgreSQL: the blog story, hand-off, stream checks, KEYS_ONLY, crash and restart."""

from __future__ import annotations

import random
import signal
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    EMPLOYEES,
    MIXED,
    ROOT,
    SERIALIZER,
    cli_base,
    create_table,
    ddb,
    ddbrepl,
    differences,
    expected_table,
    mixed_item,
    mixed_mapping,
    put_items,
    start_ddbrepl,
)


def base(aws_url: str, pg_url: str, mappings: str = EMPLOYEES) -> list[str]:
    return cli_base(aws_url, pg_url, mappings)


def tail_idle(aws_url: str, pg_url: str, *extra: str, mappings: str = EMPLOYEES) -> str:
    return ddbrepl(*base(aws_url, pg_url, mappings), "tail", "--until-idle", "--no-progress", *extra).stdout


def employees(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return pg.execute('SELECT "Id", "Name", "Department", _ddb_seq IS NOT NULL FROM "Employees" ORDER BY "Id"'
                      ).fetchall()


def stream_records(pg: psycopg.Connection[Any], table: str) -> int:
    row = pg.execute("SELECT coalesce(sum(records), 0) FROM ddbrepl.checkpoints WHERE source_table = %s",
                     (table,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("view", ["NEW_IMAGE", "KEYS_ONLY"])
def test_blog_story_put_update_delete(aws_url: str, pg_url: str, pg: psycopg.Connection[Any], view: str) -> None:
    create_table(aws_url, "Employees", [("Id", "N")], stream=view)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    client = ddb(aws_url)
    key = {"Id": {"N": "2001"}}
    client.put_item(TableName="Employees", Item={**key, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}})
    out = tail_idle(aws_url, pg_url)
    assert "1 stream records" in out, out
    assert employees(pg) == [(2001, "Akua", "AnyDept", True)]

    client.update_item(TableName="Employees", Key=key, UpdateExpression="SET empDepartment = :d",
                       ExpressionAttributeValues={":d": {"S": "ExDept"}})
    tail_idle(aws_url, pg_url)
    assert employees(pg) == [(2001, "Akua", "ExDept", True)]

    client.delete_item(TableName="Employees", Key=key)
    tail_idle(aws_url, pg_url)
    assert employees(pg) == []
    assert stream_records(pg, "Employees") == 3
    assert pg.execute("SELECT count(*) FROM ddbrepl.leases WHERE owner IS NOT NULL").fetchone() == (0,)


def test_no_stream_and_changed_stream_are_refused(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")], stream=None)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    proc = ddbrepl(*base(aws_url, pg_url), "tail", "--until-idle", check=False)
    assert proc.returncode == 1 and "no enabled stream" in proc.stderr and "StreamEnabled=true" in proc.stderr
    assert "Traceback" not in proc.stderr
    ddb(aws_url).update_table(TableName="Employees",
                              StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    tail_idle(aws_url, pg_url)
    pg.execute("UPDATE ddbrepl.streams SET stream_arn = stream_arn || '-old'")  # as if the stream had been re-enabled
    proc = ddbrepl(*base(aws_url, pg_url), "tail", "--until-idle", check=False)
    assert proc.returncode == 1 and "changed from" in proc.stderr and "backfill --table Employees" in proc.stderr
    tail_idle(aws_url, pg_url, "--accept-new-stream")


def test_backfill_handoff_skips_older_changes_and_refuses_stale_backfill(
        aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")])
    put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": f"n{i}"} for i in range(1, 6)])
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Employees", "--no-progress")
    # Pretend the backfill started 10 minutes later than the writes: their stream records are then skipped.
    pg.execute("UPDATE ddbrepl.backfills SET point_in_time = now() + interval '10 minutes'")
    out = tail_idle(aws_url, pg_url)
    assert "5 stream records" in out and "5 before the hand-off point" in out, out
    assert pg.execute('SELECT count(*) FROM "Employees" WHERE _ddb_seq IS NULL').fetchone() == (5,)
    # A backfill older than the stream's retention with no stream progress cannot be continued.
    pg.execute("DELETE FROM ddbrepl.checkpoints")
    pg.execute("UPDATE ddbrepl.backfills SET point_in_time = now() - interval '25 hours'")
    proc = ddbrepl(*base(aws_url, pg_url), "tail", "--until-idle", check=False)
    assert proc.returncode == 1 and "24 h retention" in proc.stderr and "--restart" in proc.stderr


def mixed_changes(n: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """``n`` changes on Mixed: new items, rewrites of live items (MODIFY) and deletes, in write order."""
    live: list[int] = []
    out: list[tuple[str, dict[str, Any]]] = []
    next_id = 0
    for _ in range(n):
        roll = rng.random()
        if live and roll < 0.15:
            i = live.pop(rng.randrange(len(live)))
            out.append(("delete", {"pk": f"user#{i % 97}", "sk": Decimal(i)}))
        elif live and roll < 0.40:
            out.append(("put", mixed_item(rng.choice(live), rng)))
        else:
            out.append(("put", mixed_item(next_id, rng)))
            live.append(next_id)
            next_id += 1
    return out


def write_changes(url: str, changes: list[tuple[str, dict[str, Any]]], model: dict[tuple[str, Any], Any]) -> None:
    """BatchWriteItem in order; a key appears once per call (DynamoDB refuses duplicates in one batch)."""
    client = ddb(url)
    batch: list[dict[str, Any]] = []
    keys: set[tuple[str, Any]] = set()

    def flush() -> None:
        request: Any = {"Mixed": batch[:]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        batch.clear()
        keys.clear()

    for kind, item in changes:
        key = (item["pk"], item["sk"])
        if key in keys or len(batch) == 25:
            flush()
        keys.add(key)
        if kind == "put":
            batch.append({"PutRequest": {"Item": {k: SERIALIZER.serialize(v) for k, v in item.items()}}})
            model[key] = item
        else:
            batch.append({"DeleteRequest": {"Key": {k: SERIALIZER.serialize(v) for k, v in item.items()}}})
            model.pop(key, None)
    if batch:
        flush()


@pytest.mark.slow
def test_10000_changes_with_sigkill_at_10_random_moments(aws_url: str, pg_url: str,
                                                        pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(10_000)
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")], stream="NEW_AND_OLD_IMAGES")
    ddbrepl(*base(aws_url, pg_url, MIXED), "init-schema")
    changes = mixed_changes(10_000, rng)
    model: dict[tuple[str, Any], Any] = {}
    kills = 0
    for round_ in range(10):
        write_changes(aws_url, changes[round_ * 1000:(round_ + 1) * 1000], model)
        proc = start_ddbrepl(*base(aws_url, pg_url, MIXED), "tail", "--no-progress", "--lease-seconds", "2")
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        kills += proc.returncode == -signal.SIGKILL
    assert kills == 10
    out = tail_idle(aws_url, pg_url, "--lease-seconds", "2", mappings=MIXED)
    assert "tail idle" in out
    mapping = mixed_mapping()
    expected_table(pg, mapping, model.values())
    assert differences(pg, mapping) == (0, 0)
    assert pg.execute("SELECT count(*) FROM mixed").fetchone() == (len(model),)
    assert stream_records(pg, "Mixed") == 10_000  # every stream record taken exactly once


def test_sigterm_finishes_the_batch_and_gives_leases_back(aws_url: str, pg_url: str,
                                                         pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")])
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": f"n{i}"} for i in range(300)])
    proc = start_ddbrepl(*base(aws_url, pg_url), "tail", "--no-progress", "--worker-id", "w-term")
    deadline = time.monotonic() + 30
    while stream_records(pg, "Employees") < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "tail stopped" in out and "300 stream records" in out
    assert pg.execute("SELECT count(*) FROM ddbrepl.leases WHERE owner IS NOT NULL").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM ddbrepl.workers").fetchone() == (0,)


def test_postgres_connections_killed_while_tailing(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    """Every ddbrepl connection is terminated again and again while changes flow: nothing lost, nothing twice."""
    create_table(aws_url, "Employees", [("Id", "N")])
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    proc = start_ddbrepl(*base(aws_url, pg_url), "tail", "--no-progress", "--lease-seconds", "3")
    model: dict[int, str] = {}
    kills = 0
    try:
        for round_ in range(8):
            batch = {i: f"r{round_}-{i}" for i in range(round_ * 50, round_ * 50 + 120)}
            put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": n} for i, n in batch.items()])
            model.update(batch)
            time.sleep(0.3)
            row = pg.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name "
                             "= 'ddbrepl' AND datname = current_database()").fetchone()
            kills += row[0] if row else 0
        deadline = time.monotonic() + 60
        while stream_records(pg, "Employees") < 8 * 120 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert kills > 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "database" in err and "Traceback" not in err  # the reconnects were logged, nothing crashed
    rows = pg.execute('SELECT "Id", "Name" FROM "Employees" ORDER BY "Id"').fetchall()
    assert rows == sorted(model.items())
    assert stream_records(pg, "Employees") == 8 * 120


def test_stream_disabled_while_tailing_stops_with_the_fix(aws_url: str, pg_url: str,
                                                          pg: psycopg.Connection[Any]) -> None:
    import threading

    from ddbrepl.errors import Fatal
    from ddbrepl.runners.tail import tail
    from ddbrepl.settings import Settings

    create_table(aws_url, "Employees", [("Id", "N")])
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    put_items(aws_url, "Employees", [{"Id": Decimal(1), "empName": "a"}])
    settings = Settings(mappings=(ROOT / "mappings" / "employees.yaml",), database_url=pg_url, endpoint_url=aws_url)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            tail(settings, progress=False, discover_seconds=0.3)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 20
    while stream_records(pg, "Employees") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    ddb(aws_url).update_table(TableName="Employees", StreamSpecification={"StreamEnabled": False})
    thread.join(timeout=30)
    assert not thread.is_alive()
    (exc,) = outcome
    assert isinstance(exc, Fatal) and "was disabled or replaced" in exc.message, exc
    assert "backfill --table Employees --restart" in (exc.hint or "")
    assert pg.execute("SELECT count(*) FROM ddbrepl.leases WHERE owner IS NOT NULL").fetchone() == (0,)
