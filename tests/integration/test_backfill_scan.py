"""`ddbrepl backfill --table T` from a parallel scan, on moto + real PostgreSQL: exact, resumable, shareable."""

from __future__ import annotations

import random
import re
import signal
import time
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    EMPLOYEES,
    MIXED,
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


def base(aws_url: str, pg_url: str, mappings: str = MIXED) -> list[str]:
    return cli_base(aws_url, pg_url, mappings)


def loaded_items(pg: psycopg.Connection[Any], table: str) -> int:
    row = pg.execute("SELECT coalesce(sum(items), 0) FROM ddbrepl.backfill_segments WHERE source_table = %s",
                     (table,)).fetchone()
    assert row is not None
    return int(row[0])


def test_employees_backfill(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    from decimal import Decimal

    create_table(aws_url, "Employees", [("Id", "N")])
    put_items(aws_url, "Employees", [
        {"Id": Decimal(2001), "empName": "Akua", "empDepartment": "AnyDept"},
        {"Id": Decimal(2002), "empName": "A name much longer than twenty characters"},
        {"Id": Decimal(2003), "empName": "Kofi", "empDepartment": "Engineering"},  # 11 chars: too long
    ])
    ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "init-schema")
    out = ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "backfill", "--table", "Employees", "--no-progress")
    assert "backfill of Employees finished: 3 items" in out.stdout
    assert "1 dead letters" in out.stdout
    rows = pg.execute('SELECT "Id", "Name", "Department", _ddb_seq FROM "Employees" ORDER BY "Id"').fetchall()
    assert rows == [(2001, "Akua", "AnyDept", None), (2002, "A name much longer t", "NA", None)]
    dead = pg.execute("SELECT mapping, column_name, origin, reason FROM ddbrepl.dead_letters").fetchall()
    assert len(dead) == 1 and dead[0][:3] == ("employees", "Department", "scan")
    again = ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "backfill", "--table", "Employees")
    assert "already finished" in again.stdout


def test_backfill_unknown_table_and_missing_schema(aws_url: str, pg_url: str) -> None:
    proc = ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "backfill", "--table", "Employees", check=False)
    assert proc.returncode == 1 and "init-schema" in proc.stderr
    ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "init-schema")
    proc = ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "backfill", "--table", "Employees", check=False)
    assert proc.returncode == 1 and "Employees" in proc.stderr and "Traceback" not in proc.stderr
    proc = ddbrepl(*base(aws_url, pg_url, EMPLOYEES), "backfill", "--table", "Nope", check=False)
    assert proc.returncode == 1 and "no mapping reads table 'Nope'" in proc.stderr


@pytest.mark.slow
def test_20000_mixed_items_exact_then_killed_and_resumed(aws_url: str, pg_url: str,
                                                        pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(20_000)
    items = [mixed_item(i, rng) for i in range(20_000)]
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")])
    put_items(aws_url, "Mixed", items)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    args = [*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--segments", "8", "--workers", "4",
            "--page-limit", "500", "--no-progress"]

    # kill -9 at a random moment after the first pages committed
    proc = start_ddbrepl(*args)
    deadline = time.monotonic() + 120
    while loaded_items(pg, "Mixed") < rng.randint(1_000, 8_000) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    committed = loaded_items(pg, "Mixed")
    assert 0 < committed < len(items)
    assert pg.execute("SELECT count(*) FROM mixed").fetchone() == (committed,)

    out = ddbrepl(*args)
    resumed = int(re.search(r"finished: ([\d,]+) items", out.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert resumed == len(items) - committed  # no committed page was read again
    assert loaded_items(pg, "Mixed") == len(items)

    mapping = mixed_mapping()
    assert expected_table(pg, mapping, items) == len(items)
    assert differences(pg, mapping) == (0, 0)
    assert pg.execute("SELECT count(*) FROM mixed WHERE _ddb_seq IS NOT NULL").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)


def test_two_processes_share_the_segments(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(2)
    items = [mixed_item(i, rng) for i in range(6_000)]
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")])
    put_items(aws_url, "Mixed", items)
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    args = [*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--segments", "16", "--workers", "2",
            "--page-limit", "100", "--no-progress"]
    first = start_ddbrepl(*args)
    while pg.execute("SELECT to_regclass('ddbrepl.backfills') IS NOT NULL AND EXISTS "
                     "(SELECT 1 FROM ddbrepl.backfills)").fetchone() != (True,):
        time.sleep(0.05)
    second = start_ddbrepl(*args)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    owners = pg.execute("SELECT count(DISTINCT claimed_by), bool_and(done), sum(items) FROM ddbrepl.backfill_segments "
                        "WHERE source_table = 'Mixed'").fetchone()
    assert owners == (2, True, len(items))  # both worked, every segment done, no item loaded twice
    mapping = mixed_mapping()
    expected_table(pg, mapping, items)
    assert differences(pg, mapping) == (0, 0)


def test_restart_loads_again(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(3)
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")])
    put_items(aws_url, "Mixed", [mixed_item(i, rng) for i in range(300)])
    ddbrepl(*base(aws_url, pg_url), "init-schema")
    ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed")
    put_items(aws_url, "Mixed", [mixed_item(i, rng) for i in range(300, 400)])
    assert "already finished" in ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed").stdout
    out = ddbrepl(*base(aws_url, pg_url), "backfill", "--table", "Mixed", "--restart")
    assert "finished: 400 items" in out.stdout
    assert pg.execute("SELECT count(*) FROM mixed").fetchone() == (400,)
