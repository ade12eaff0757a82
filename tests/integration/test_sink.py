"""sink.apply and state.deadletters/tombstones against a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ddbrepl import ddl
from ddbrepl.mapping.model import Child, Column, Mapping, SqlType, TableRef
from ddbrepl.mapping.paths import parse_path
from ddbrepl.records import ApplyStats, ChildRows, Delete, Op, Origin, RawChange, Rejected, Upsert
from ddbrepl.sink.apply import apply, collapse
from ddbrepl.state import deadletters, migrate, tombstones

SEQ0 = 10**30  # stream sequence numbers are 21 to 40 digits


def col(name: str, source: str, type_: SqlType, *, pk: bool = False, child: bool = False) -> Column:
    return Column(name, parse_path(source, in_child=child), type_, primary_key=pk)


TEXT = SqlType("text")
EMPLOYEES = Mapping(
    name="employees",
    path=Path("employees.yaml"),
    source_table="Employees",
    source_key=("Id",),
    target=TableRef("public", "Employees"),
    columns=(
        col("Id", "Id", SqlType("bigint"), pk=True),
        col("Name", "empName", SqlType("varchar", length=20)),
        col("Order", "order", SqlType("numeric")),
        col('Dépt "x"-name', "empDepartment", TEXT),
    ),
)
SOFT = Mapping(
    name="crm",
    path=Path("crm.yaml"),
    source_table="Users",
    source_key=("userId", "tenant"),
    target=TableRef("crm", "Users"),
    columns=(
        col("user_id", "userId", SqlType("bigint"), pk=True),
        col("tenant", "tenant", TEXT, pk=True),
        col("email", "emailAddress", TEXT),
        col("doc", "doc", SqlType("jsonb")),
    ),
    delete="soft",
)
PROFILES = Mapping(
    name="profiles",
    path=Path("profiles.yaml"),
    source_table="Profiles",
    source_key=("profile_id",),
    target=TableRef("public", "profiles"),
    columns=(col("profile_id", "profile_id", TEXT, pk=True), col("name", "name", TEXT)),
    children=(
        Child(
            target=TableRef("public", "profile_attributes"),
            source=parse_path("metadata"),
            columns=(col("attr", "$key", TEXT, pk=True, child=True), col("value", "$value", TEXT, child=True)),
        ),
    ),
)


class CountingCursor(psycopg.Cursor[Any]):
    """A real psycopg cursor that counts the statements it sends (execute and COPY)."""

    sent = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.sent += 1
        return super().execute(*args, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.sent += 1
        return super().copy(*args, **kwargs)


@pytest.fixture
def db(pg_url: str, pg: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A transactional connection to a database holding the control schema and every target table above."""
    with pg.transaction():
        migrate.apply(pg)
        for stmt in ddl.plan_offline([EMPLOYEES, SOFT, PROFILES]).statements:
            pg.execute(stmt)
    with psycopg.connect(pg_url, cursor_factory=CountingCursor) as conn:
        yield conn


def run(conn: psycopg.Connection[Any], mapping: Mapping, ops: Sequence[Op], origin: Origin = "stream") -> ApplyStats:
    with conn.transaction():
        return apply(conn, mapping, ops, origin=origin)


def rows(pg: psycopg.Connection[Any], table: str, order: str = "1") -> list[tuple[Any, ...]]:
    return pg.execute(sql.SQL("SELECT * FROM {} ORDER BY " + order).format(sql.SQL(table))).fetchall()


def emp(i: int, name: str, seq: int | None, order: Any = None, dept: str | None = "NA") -> Upsert:
    return Upsert(key=(i,), values=(i, name, order, dept), sequence=seq)


def employees(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    query = 'SELECT "Id", "Name", "Order", "Dépt ""x""-name", _ddb_seq FROM "Employees" ORDER BY 1'
    return pg.execute(query).fetchall()


def test_insert_update_delete_with_quoted_identifiers(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    stats = run(db, EMPLOYEES, [emp(2001, "Akua", SEQ0 + 1, Decimal("1.50"), "AnyDept"), emp(2002, "Bo", SEQ0 + 2)])
    assert stats == ApplyStats(upserts=2)
    assert employees(pg) == [(2001, "Akua", Decimal("1.50"), "AnyDept", SEQ0 + 1), (2002, "Bo", None, "NA", SEQ0 + 2)]
    before = pg.execute('SELECT _ddb_synced_at FROM "Employees" WHERE "Id" = 2001').fetchone()

    stats = run(db, EMPLOYEES, [emp(2001, "Akua", SEQ0 + 3, Decimal("1E+125"), "ExDept")])
    assert stats == ApplyStats(upserts=1)
    assert employees(pg)[0] == (2001, "Akua", Decimal("1E+125"), "ExDept", SEQ0 + 3)
    after = pg.execute('SELECT _ddb_synced_at FROM "Employees" WHERE "Id" = 2001').fetchone()
    assert before is not None and after is not None and after[0] > before[0]

    stats = run(db, EMPLOYEES, [Delete(key=(2001,), sequence=SEQ0 + 4), Delete(key=(9999,), sequence=SEQ0 + 5)])
    assert stats == ApplyStats(deletes=1)
    assert employees(pg) == [(2002, "Bo", None, "NA", SEQ0 + 2)]
    assert tombstones.count(pg, "public.Employees") == 0  # no backfill running: no tombstones


def test_collapse_keeps_last_op_per_key(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    ops: list[Op] = [
        emp(1, "one", SEQ0 + 1),
        emp(2, "two", SEQ0 + 2),
        emp(1, "one-b", SEQ0 + 3),
        Delete(key=(2,), sequence=SEQ0 + 4),
        emp(3, "three", SEQ0 + 5),
        Delete(key=(3,), sequence=SEQ0 + 6),
        emp(3, "three-again", SEQ0 + 7),
    ]
    batch = collapse(ops)
    assert [u.values[1] for u in batch.upserts] == ["one-b", "three-again"]
    assert [d.key for d in batch.deletes] == [(2,)]
    stats = run(db, EMPLOYEES, ops)
    assert stats == ApplyStats(upserts=2, deletes=0)
    assert [(r[0], r[1], r[4]) for r in employees(pg)] == [(1, "one-b", SEQ0 + 3), (3, "three-again", SEQ0 + 7)]


def start_backfill(pg: psycopg.Connection[Any], source_table: str) -> None:
    pg.execute(
        "INSERT INTO ddbrepl.backfills (source_table, kind, point_in_time) VALUES (%s, 'scan', now())", (source_table,)
    )


def test_backfill_never_overwrites_stream_rows_nor_resurrects_tombstones(
    db: psycopg.Connection[Any], pg: psycopg.Connection[Any]
) -> None:
    run(db, EMPLOYEES, [emp(1, "stream", SEQ0 + 1), emp(3, "doomed", SEQ0 + 2)])
    start_backfill(pg, "Employees")
    run(db, EMPLOYEES, [Delete(key=(3,), sequence=SEQ0 + 3), Delete(key=(4,), sequence=SEQ0 + 4)])
    assert tombstones.backfill_running(pg, "Employees")
    assert pg.execute("SELECT key, sequence FROM ddbrepl.tombstones ORDER BY key").fetchall() == [
        ([3], SEQ0 + 3),
        ([4], SEQ0 + 4),
    ]

    # The scan read items 1, 3 and 4 before the stream changed them, and item 2 that nothing touched.
    scan = [emp(1, "old", None), emp(2, "scanned", None), emp(3, "old", None), emp(4, "old", None)]
    stats = run(db, EMPLOYEES, scan, origin="scan")
    assert stats == ApplyStats(upserts=1, skipped=3)
    assert [(r[0], r[1], r[4]) for r in employees(pg)] == [(1, "stream", SEQ0 + 1), (2, "scanned", None)]

    # A second scan pass (a resumed page) may overwrite a backfill row, never a stream row.
    stats = run(db, EMPLOYEES, [emp(2, "rescanned", None), emp(1, "old", None)], origin="export")
    assert stats == ApplyStats(upserts=1, skipped=1)
    assert [r[1] for r in employees(pg)] == ["stream", "rescanned"]

    # A stream change may overwrite a backfill row, and re-create a deleted key.
    stats = run(db, EMPLOYEES, [emp(2, "streamed", SEQ0 + 9), emp(3, "back", SEQ0 + 10)])
    assert stats == ApplyStats(upserts=2)
    assert [r[1] for r in employees(pg)] == ["stream", "streamed", "back"]

    pg.execute("UPDATE ddbrepl.backfills SET finished_at = now() WHERE source_table = 'Employees'")
    assert not tombstones.backfill_running(pg, "Employees")
    assert tombstones.clear(pg, ["public.Employees"]) == 2
    assert tombstones.count(pg, "public.Employees") == 0


def test_replay_guard(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    run(db, EMPLOYEES, [emp(1, "at-100", SEQ0 + 100), emp(2, "at-100", SEQ0 + 100), emp(5, "gone", SEQ0 + 50)])
    start_backfill(pg, "Employees")
    run(db, EMPLOYEES, [Delete(key=(5,), sequence=SEQ0 + 120)])

    stats = run(
        db,
        EMPLOYEES,
        [emp(1, "at-90", SEQ0 + 90), emp(2, "at-110", SEQ0 + 110), emp(5, "at-115", SEQ0 + 115), emp(6, "new", SEQ0)],
        origin="replay",
    )
    assert stats == ApplyStats(upserts=2, skipped=2)
    assert [(r[0], r[1]) for r in employees(pg)] == [(1, "at-100"), (2, "at-110"), (6, "new")]

    stats = run(db, EMPLOYEES, [emp(5, "at-125", SEQ0 + 125)], origin="replay")
    assert stats == ApplyStats(upserts=1)
    # A replayed delete older than the row is refused; a newer one applies.
    stats = run(db, EMPLOYEES, [Delete(key=(1,), sequence=SEQ0 + 99), Delete(key=(2,), sequence=SEQ0 + 111)],
                origin="replay")
    assert stats == ApplyStats(deletes=1)
    assert [r[0] for r in employees(pg)] == [1, 5, 6]


def test_repair_overwrites_unconditionally(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    run(db, EMPLOYEES, [emp(1, "stream", SEQ0 + 100)])
    stats = run(db, EMPLOYEES, [emp(1, "repaired", None)], origin="repair")
    assert stats == ApplyStats(upserts=1)
    assert employees(pg) == [(1, "repaired", None, "NA", None)]


def test_soft_delete(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    def user(i: int, email: str, seq: int | None, doc: Any) -> Upsert:
        return Upsert(key=(i, "t1"), values=(i, "t1", email, doc), sequence=seq)

    doc = {"n": Decimal("1.50"), "tags": frozenset({"b", "a"}), "raw": b"\x00\xff", "ü": [True, None]}
    stats = run(db, SOFT, [user(1, "a@x", SEQ0 + 1, doc), user(2, "b@x", SEQ0 + 2, '{"already": "json"}')])
    assert stats == ApplyStats(upserts=2)
    got = pg.execute("SELECT doc::text FROM crm.\"Users\" ORDER BY user_id").fetchall()
    assert got == [('{"n": 1.50, "ü": [true, null], "raw": "AP8=", "tags": ["a", "b"]}',), ('{"already": "json"}',)]

    stats = run(db, SOFT, [Delete(key=(1, "t1"), sequence=SEQ0 + 3, soft=True)])
    assert stats == ApplyStats(deletes=1)
    first = pg.execute('SELECT deleted_at, _ddb_seq FROM crm."Users" WHERE user_id = 1').fetchone()
    assert first is not None and first[0] is not None and first[1] == SEQ0 + 3
    run(db, SOFT, [Delete(key=(1, "t1"), sequence=SEQ0 + 4, soft=True)])
    again = pg.execute('SELECT deleted_at, _ddb_seq FROM crm."Users" WHERE user_id = 1').fetchone()
    assert again == (first[0], SEQ0 + 4)  # the first deletion time is kept

    # A backfill row never revives a soft-deleted row (it was written by the stream); a stream upsert does.
    assert run(db, SOFT, [user(1, "old@x", None, None)], origin="scan") == ApplyStats(skipped=1)
    run(db, SOFT, [user(1, "new@x", SEQ0 + 5, None)])
    assert pg.execute('SELECT email, deleted_at FROM crm."Users" WHERE user_id = 1').fetchone() == ("new@x", None)


def profile(pid: str, name: str, seq: int | None, attrs: dict[str, str]) -> Upsert:
    return Upsert(
        key=(pid,),
        values=(pid, name),
        sequence=seq,
        children=(ChildRows(child=0, rows=tuple(attrs.items())),),
    )


def test_children_replaced_and_cascaded(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    stats = run(
        db,
        PROFILES,
        [
            profile("p1", "Ann", SEQ0 + 1, {"email": "a@x", "phone": "1"}),
            profile("p2", "Bob", SEQ0 + 2, {"email": "b@x"}),
        ],
    )
    assert stats == ApplyStats(upserts=2, children=3)
    attrs = "SELECT profile_id, attr, value FROM profile_attributes ORDER BY 1, 2"
    assert pg.execute(attrs).fetchall() == [("p1", "email", "a@x"), ("p1", "phone", "1"), ("p2", "email", "b@x")]

    stats = run(db, PROFILES, [profile("p1", "Ann", SEQ0 + 3, {"cookie": "c1"})])
    assert stats == ApplyStats(upserts=1, children=1)
    assert pg.execute(attrs).fetchall() == [("p1", "cookie", "c1"), ("p2", "email", "b@x")]

    # A refused backfill upsert leaves the parent's children alone; an accepted one replaces them.
    stats = run(db, PROFILES, [profile("p1", "old", None, {"x": "y"}), profile("p3", "Cy", None, {"email": "c@x"})],
                origin="scan")
    assert stats == ApplyStats(upserts=1, skipped=1, children=1)
    assert pg.execute(attrs).fetchall() == [("p1", "cookie", "c1"), ("p2", "email", "b@x"), ("p3", "email", "c@x")]

    # An upsert with no children empties them; a delete removes them through the cascade.
    stats = run(db, PROFILES, [Upsert(key=("p2",), values=("p2", "Bob"), sequence=SEQ0 + 4),
                               Delete(key=("p3",), sequence=SEQ0 + 5)])
    assert stats == ApplyStats(upserts=1, deletes=1)
    assert pg.execute(attrs).fetchall() == [("p1", "cookie", "c1")]


def rejected(i: int, reason: str, image: dict[str, Any], seq: int | None = SEQ0) -> Rejected:
    change = RawChange(
        event="MODIFY",
        keys={"Id": {"N": str(i)}},
        new_image=image,
        sequence=seq,
        approx_time=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        event_id=f"ev-{i}",
    )
    return Rejected("employees", reason, change, column="Name", path="empName", value_excerpt="Ünïcödé\x00!")


def test_dead_letters_round_trip(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    image = {
        "Id": {"N": "7"},
        "blob": {"B": b"\x00\x01\xfe"},
        "blobs": {"BS": [b"\xff", b"\x00"]},
        "exact": {"N": "123456789012345678901234567890.123456789"},
        "dec": Decimal("1E+125"),
        "empName": {"S": "日本語 ✓ nul:\x00 end"},
    }
    ops: list[Op] = [emp(1, "ok", SEQ0 + 1), rejected(7, "value too long for varchar(20)", image, SEQ0 + 2)]
    stats = run(db, EMPLOYEES, ops)
    assert stats == ApplyStats(upserts=1, rejected=1)

    (letter,) = deadletters.list_open(pg, mapping="employees")
    assert (letter.source_table, letter.target_table, letter.origin) == ("Employees", "public.Employees", "stream")
    assert (letter.reason, letter.column, letter.path) == ("value too long for varchar(20)", "Name", "empName")
    assert letter.value_excerpt == "Ünïcödé\\x00!"
    change = letter.change
    assert (change.event, change.sequence, change.event_id) == ("MODIFY", SEQ0 + 2, "ev-7")
    assert change.approx_time == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert change.keys == {"Id": {"N": "7"}}
    assert change.new_image is not None
    assert change.new_image["blob"] == {"B": "AAH+"}
    assert change.new_image["blobs"] == {"BS": ["/w==", "AA=="]}  # as read: a list keeps its order
    assert change.new_image["exact"] == {"N": "123456789012345678901234567890.123456789"}
    assert change.new_image["dec"] == Decimal("1E+125")
    assert change.new_image["empName"] == {"S": "日本語 ✓ nul:\\x00 end"}
    assert pg.execute("SELECT key, sequence FROM ddbrepl.dead_letters").fetchone() == ({"Id": {"N": "7"}}, SEQ0 + 2)

    # The same change rejected again (a failed replay) bumps attempts instead of adding a row.
    run(db, EMPLOYEES, [rejected(7, "still too long", image, SEQ0 + 2), rejected(8, "other", {}, None)], "replay")
    open_ = deadletters.list_open(pg)
    assert [(d.change.event_id, d.attempts, d.reason) for d in open_] == [
        ("ev-7", 2, "still too long"),
        ("ev-8", 1, "other"),
    ]
    assert open_[0].origin == "stream" and open_[1].origin == "replay"
    assert deadletters.count_open(pg) == 2
    assert len(deadletters.list_open(pg, after_id=open_[0].id)) == 1

    with pg.transaction():
        assert deadletters.resolve(pg, [open_[0].id]) == 1
        assert deadletters.discard(pg, [open_[1].id]) == 1
    assert deadletters.list_open(pg) == []
    assert deadletters.count_open(pg, mapping="employees") == 0
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters WHERE resolved_at IS NOT NULL").fetchone() == (1,)


def test_an_error_rolls_back_the_whole_batch(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    run(db, EMPLOYEES, [emp(1, "kept", SEQ0 + 1)])
    ops: list[Op] = [
        emp(1, "changed", SEQ0 + 2),
        emp(2, "new", SEQ0 + 3),
        rejected(3, "bad", {}),
        emp(4, "x" * 21, SEQ0 + 4),  # longer than varchar(20): the COPY fails
    ]
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        run(db, EMPLOYEES, ops)
    assert employees(pg) == [(1, "kept", None, "NA", SEQ0 + 1)]
    assert deadletters.count_open(pg) == 0

    # An error after a successful apply (say, the checkpoint update) takes the whole batch back too.
    with pytest.raises(psycopg.errors.DivisionByZero), db.transaction():
        stats = apply(db, EMPLOYEES, [emp(1, "changed", SEQ0 + 2), Delete((9,), SEQ0 + 3), rejected(3, "bad", {})],
                      origin="stream")
        assert stats == ApplyStats(upserts=1, rejected=1)
        db.execute("SELECT 1 / 0")
    assert employees(pg) == [(1, "kept", None, "NA", SEQ0 + 1)]
    assert deadletters.count_open(pg) == 0

    # The connection is usable again, and a later batch in a fresh transaction applies.
    assert run(db, EMPLOYEES, [emp(2, "new", SEQ0 + 5)]) == ApplyStats(upserts=1)


def test_refuses_to_run_outside_a_transaction(pg: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.ProgrammingError, match="open transaction"):
        apply(pg, EMPLOYEES, [emp(1, "x", 1)], origin="stream")


def test_large_batch_is_set_based(db: psycopg.Connection[Any], pg: psycopg.Connection[Any]) -> None:
    n = 50_000
    ops: list[Op] = [emp(i, f"name {i}", SEQ0 + i, Decimal(i) / 100) for i in range(n)]
    ops += [Delete(key=(i,), sequence=SEQ0 + n + i) for i in range(0, n, 10)]
    ops += [emp(i, f"renamed {i}", SEQ0 + 2 * n + i) for i in range(0, n, 100)]
    CountingCursor.sent = 0
    started = time.perf_counter()
    stats = run(db, EMPLOYEES, ops)
    elapsed = time.perf_counter() - started
    deleted = n // 10 - n // 100
    assert stats == ApplyStats(upserts=n - deleted, deletes=0)
    assert CountingCursor.sent <= 10  # a fixed number of statements, whatever the batch size
    assert elapsed < 20
    count = pg.execute('SELECT count(*), count(*) FILTER (WHERE "Name" LIKE %s) FROM "Employees"', ("renamed%",))
    assert count.fetchone() == (n - deleted, n // 100)

    CountingCursor.sent = 0
    stats = run(db, EMPLOYEES, [Delete(key=(i,), sequence=SEQ0 + 3 * n + i) for i in range(n)])
    assert stats == ApplyStats(deletes=n - deleted)
    assert CountingCursor.sent <= 10
    assert pg.execute('SELECT count(*) FROM "Employees"').fetchone() == (0,)


def test_staging_survives_rollbacks_and_repeated_batches(pg_url: str, db: psycopg.Connection[Any],
                                                          pg: psycopg.Connection[Any]) -> None:
    # A fresh session whose first batch fails: the staging tables it created vanish with the rollback.
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(psycopg.errors.StringDataRightTruncation):
            run(conn, EMPLOYEES, [emp(1, "y" * 21, SEQ0)])
        # Two batches in one transaction: the second must not see the first one's staged rows.
        with conn.transaction():
            first = apply(conn, PROFILES, [profile("p1", "Ann", SEQ0 + 1, {"a": "1"})], origin="stream")
            second = apply(conn, PROFILES, [profile("p2", "Bob", SEQ0 + 2, {"b": "2"}),
                                            Delete(key=("p1",), sequence=SEQ0 + 3)], origin="stream")
            third = apply(conn, EMPLOYEES, [emp(1, "one", SEQ0 + 4)], origin="stream")
        assert first == ApplyStats(upserts=1, children=1)
        assert second == ApplyStats(upserts=1, deletes=1, children=1)
        assert third == ApplyStats(upserts=1)
        # And the next transaction creates them afresh.
        assert run(conn, PROFILES, [profile("p3", "Cy", SEQ0 + 5, {})]) == ApplyStats(upserts=1)
    assert pg.execute("SELECT profile_id, attr FROM profile_attributes ORDER BY 1").fetchall() == [("p2", "b")]
    assert pg.execute("SELECT profile_id FROM profiles ORDER BY 1").fetchall() == [("p2",), ("p3",)]


def test_batches_leave_no_prepared_plan_nor_temporary_table(db: psycopg.Connection[Any],
                                                         pg: psycopg.Connection[Any]) -> None:
    # psycopg prepares a statement run 5 times; a generic plan made while the target was small would keep
    # seq-scanning it after it grew. Every batch must be planned afresh.
    for n in range(8):
        run(db, PROFILES, [profile(f"p{n}", "x", SEQ0 + n, {"a": str(n)}), Delete(key=(f"p{n - 1}",), sequence=SEQ0)])
    assert db.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    # No temporary table outlives its transaction: a session serving many mappings must not accumulate
    # ON COMMIT DELETE ROWS tables, which PostgreSQL would truncate at every commit.
    temp = "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
    assert db.execute(temp).fetchone() == (0,)
    db.rollback()
    assert pg.execute("SELECT profile_id, attr, value FROM profile_attributes").fetchall() == [("p7", "a", "7")]


def test_insert_then_soft_delete_in_one_batch_keeps_the_row(db: psycopg.Connection[Any],
                                                            pg: psycopg.Connection[Any]) -> None:
    def user(i: int, email: str, seq: int) -> Upsert:
        return Upsert(key=(i, "t1"), values=(i, "t1", email, None), sequence=seq)

    stats = run(db, SOFT, [user(1, "a@x", SEQ0 + 1), user(1, "b@x", SEQ0 + 2),
                           Delete(key=(1, "t1"), sequence=SEQ0 + 3, soft=True),
                           user(2, "c@x", SEQ0 + 4), Delete(key=(2, "t1"), sequence=SEQ0 + 5, soft=True),
                           Delete(key=(2, "t1"), sequence=SEQ0 + 6, soft=False)])
    assert stats.deletes == 1
    got = pg.execute('SELECT user_id, email, deleted_at IS NOT NULL, _ddb_seq FROM crm."Users" ORDER BY 1')
    assert got.fetchall() == [(1, "b@x", True, SEQ0 + 3)]


def _in_thread(pg_url: str, mapping: Mapping, ops: Sequence[Op], origin: Origin) -> tuple[threading.Thread, list[Any]]:
    """Apply ``ops`` from another session in a thread; the result list gets the stats or the exception."""
    out: list[Any] = []

    def work() -> None:
        try:
            with psycopg.connect(pg_url) as conn:
                out.append(run(conn, mapping, ops, origin))
        except Exception as exc:  # reported to the test through `out`
            out.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


def test_concurrent_backfill_and_delete_never_resurrect(pg_url: str, db: psycopg.Connection[Any],
                                                        pg: psycopg.Connection[Any]) -> None:
    start_backfill(pg, "Employees")
    run(db, EMPLOYEES, [emp(2, "stream", SEQ0 + 1)])

    # 1. The backfill has inserted key 1 but not committed; the stream deletes key 1 meanwhile. Under READ
    # COMMITTED the delete would not see the row, so it must wait for the backfill's commit.
    with db.transaction():
        assert apply(db, EMPLOYEES, [emp(1, "scanned", None)], origin="scan") == ApplyStats(upserts=1)
        thread, out = _in_thread(pg_url, EMPLOYEES, [Delete(key=(1,), sequence=SEQ0 + 2)], "stream")
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the backfill transaction
    thread.join(10)
    assert out == [ApplyStats(deletes=1)]
    assert [r[0] for r in employees(pg)] == [2]

    # 2. The stream has deleted key 2 but not committed; the backfill, which scanned key 2 earlier, would miss
    # the uncommitted tombstone and re-insert the row once the delete commits. It must wait too.
    with db.transaction():
        assert apply(db, EMPLOYEES, [Delete(key=(2,), sequence=SEQ0 + 3)], origin="stream") == ApplyStats(deletes=1)
        thread, out = _in_thread(pg_url, EMPLOYEES, [emp(2, "scanned", None)], "scan")
        thread.join(0.5)
        assert thread.is_alive()
    thread.join(10)
    assert out == [ApplyStats(skipped=1)]
    assert employees(pg) == []

    # Deletes from several stream workers do not wait for one another.
    run(db, EMPLOYEES, [emp(3, "a", SEQ0 + 4), emp(4, "b", SEQ0 + 5)])
    with db.transaction():
        apply(db, EMPLOYEES, [Delete(key=(3,), sequence=SEQ0 + 6)], origin="stream")
        thread, out = _in_thread(pg_url, EMPLOYEES, [Delete(key=(4,), sequence=SEQ0 + 7)], "lambda")
        thread.join(10)
        assert out == [ApplyStats(deletes=1)]
