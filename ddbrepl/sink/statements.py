"""psycopg.sql builders for the sink: staging tables, COPY, merge, delete-using, children, tombstones.

Only identifiers are composed here, always through ``sql.Identifier``; no builder ever sees a value. Values reach
the server as COPY data or as the named parameters a builder documents (``%(target_table)s``,
``%(source_table)s``). Builders are pure, so their SQL can be read in tests without a server.

Guards (DESIGN §4) decide whether a staged row may overwrite what the target holds:
- ``"none"``: stream, Lambda and repair changes overwrite unconditionally; ordering comes from reading shards in
  lineage order, never from comparing sequence numbers across rows.
- ``"backfill"``: scan and export rows (``_ddb_seq`` NULL) never overwrite a row a stream change wrote, and never
  recreate a tombstoned key.
- ``"replay"``: a replayed dead letter never overwrites a row with a newer sequence, nor a key tombstoned later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from psycopg import sql

from ddbrepl.mapping.model import DELETED_COLUMN, SEQ_COLUMN, SYNCED_COLUMN, TableRef

Guard = Literal["none", "backfill", "replay"]

TOMBSTONES = sql.Identifier("ddbrepl", "tombstones")
BACKFILLS = sql.Identifier("ddbrepl", "backfills")
OP_COLUMN = "_ddb_op"
"""smallint column of the upsert/delete staging table saying what each staged row is (the values below)."""
OP_UPSERT, OP_DELETE, OP_SOFT_DELETE = 0, 1, 2

_SEQ = sql.Identifier(SEQ_COLUMN)
_SYNCED = sql.Identifier(SYNCED_COLUMN)
_DELETED = sql.Identifier(DELETED_COLUMN)


def table(ref: TableRef) -> sql.Identifier:
    """The schema-qualified identifier of a target or child table."""
    return sql.Identifier(ref.schema, ref.table)


def names(columns: Sequence[str], alias: str | None = None) -> sql.Composed:
    """``a, b, c`` or, with an alias, ``s.a, s.b, s.c``."""
    if alias is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns)


def match(left: str, right: str, keys: Sequence[str]) -> sql.Composed:
    """``l.k1 = r.k1 AND l.k2 = r.k2``: equality on every key column."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in keys
    )


def key_json(alias: str, keys: Sequence[str]) -> sql.Composed:
    """The primary key as a JSON array in key-column order: the form ``ddbrepl.tombstones.key`` stores."""
    return sql.SQL("jsonb_build_array({})").format(names(keys, alias))


def prepare_staging(staging: str, source: sql.Identifier, columns: Sequence[str], *, op: bool = False) -> sql.Composed:
    """Create (once per transaction) and empty a temporary table with the types of ``columns`` of ``source``.

    ``CREATE … AS SELECT … WITH NO DATA`` copies the exact column types (varchar(n), numeric(p,s), arrays), so
    COPY parses values exactly as the target would, while NOT NULL and defaults stay behind. The table is dropped
    at commit; the ``DELETE`` empties it for a second apply in the same transaction. Not ``ON COMMIT DELETE
    ROWS`` kept for the session: PostgreSQL truncates every such table at every commit that touched any temporary
    table, so a session serving many mappings would pay for all of them each time (measured: 150 tables made a
    commit 200 times slower). Two statements without parameters: send them in one round trip. ``op`` adds the
    OP_COLUMN.
    """
    extra = sql.SQL(", CAST(NULL AS smallint) AS {}").format(sql.Identifier(OP_COLUMN)) if op else sql.SQL("")
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {0} ON COMMIT DROP AS SELECT {1}{2} FROM {3} WITH NO DATA; DELETE FROM {0}"
    ).format(sql.Identifier(staging), names(columns), extra, source)


def lock_tombstones(key: int, *, exclusive: bool) -> sql.Composed:
    """Take the transaction-level advisory lock that orders backfill merges and deletes of one target table.

    Under READ COMMITTED a backfill merge and a concurrent delete each miss the other's uncommitted work (the
    merge cannot see the new tombstone, the delete cannot see the freshly inserted backfill row), so either order
    could resurrect a deleted key. Backfill merges take the lock exclusively, deletes shared: they never overlap,
    and the statement after the lock takes its snapshot once the other side has committed. Deletes from several
    stream workers do not wait for one another. ``key`` is an integer the sink derives from the table name.
    """
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return sql.SQL("SELECT {}({})").format(sql.SQL(function), sql.Literal(key))


def create_temporary(staging: str, source: sql.Identifier, columns: Sequence[str]) -> sql.Composed:
    """A temporary table with the types of ``columns`` of ``source``, dropped at commit (for rare paths)."""
    return sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        sql.Identifier(staging), names(columns), source
    )


def drop(tables: Sequence[str]) -> sql.Composed:
    """Drop temporary tables now, so that a second call in the same transaction can create them again."""
    return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in tables))


def copy(staging: str, columns: Sequence[str], *, binary: bool = False) -> sql.Composed:
    """``COPY staging (columns) FROM STDIN``, text or binary format."""
    fmt = sql.SQL(" (FORMAT BINARY)") if binary else sql.SQL("")
    return sql.SQL("COPY {} ({}) FROM STDIN{}").format(sql.Identifier(staging), names(columns), fmt)


def _tombstone_filter(alias: str, keys: Sequence[str], guard: Guard) -> sql.Composable:
    """Anti-join against tombstones: any tombstone blocks a backfill row; a later one blocks a replay."""
    if guard == "none":
        return sql.SQL("")
    base = sql.SQL(
        " AND NOT EXISTS (SELECT 1 FROM {} AS tb WHERE tb.target_table = %(target_table)s AND tb.key = {}"
    ).format(TOMBSTONES, key_json(alias, keys))
    if guard == "backfill":
        return base + sql.SQL(")")
    return base + sql.SQL(" AND ({s} IS NULL OR tb.sequence > {s}))").format(s=sql.Identifier(alias, SEQ_COLUMN))


def _row_guard(target: str, incoming: sql.Composable, guard: Guard) -> sql.Composable:
    """The condition under which an incoming change may overwrite or delete the existing target row."""
    seq = sql.Identifier(target, SEQ_COLUMN)
    if guard == "backfill":
        return sql.SQL("{} IS NULL").format(seq)
    if guard == "replay":
        return sql.SQL("({0} IS NULL OR {0} < {1})").format(seq, incoming)
    return sql.SQL("true")


def merge(
    target: sql.Identifier,
    staging: str,
    columns: Sequence[str],
    keys: Sequence[str],
    *,
    guard: Guard,
    soft: bool,
) -> sql.Composed:
    """One ``INSERT … SELECT … ON CONFLICT (pk) DO UPDATE`` of the staged upserts into the target.

    Every staged row sets ``_ddb_seq`` from the staging table and ``_ddb_synced_at`` to the transaction time; an
    upsert clears ``deleted_at`` (``soft``). Rows inserted or updated are the applied ones, so ``staged -
    applied`` rows were refused by the guard. Parameters: ``%(target_table)s`` ("schema.table") when the guard
    reads tombstones. Rows are merged in key order, so two batches locking overlapping rows (a backfill page
    and a stream batch) lock them in the same order and cannot deadlock.
    """
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns if c not in keys]
    updates.append(sql.SQL("{0} = EXCLUDED.{0}").format(_SEQ))
    updates.append(sql.SQL("{0} = EXCLUDED.{0}").format(_SYNCED))
    if soft:
        updates.append(sql.SQL("{} = NULL").format(_DELETED))
    where: sql.Composable = sql.SQL("")
    if guard != "none":
        where = sql.SQL(" WHERE ") + _row_guard("t", sql.SQL("EXCLUDED.{}").format(_SEQ), guard)
    return sql.SQL(
        "INSERT INTO {target} AS t ({cols}, {seq}, {synced}) SELECT {scols}, {sseq}, now() FROM {staging} AS s"
        " WHERE s.{op} = {upsert}{tomb} ORDER BY {skeys} ON CONFLICT ({keys}) DO UPDATE SET {updates}{where}"
    ).format(
        target=target,
        cols=names(columns),
        seq=_SEQ,
        synced=_SYNCED,
        scols=names(columns, "s"),
        sseq=sql.Identifier("s", SEQ_COLUMN),
        staging=sql.Identifier(staging),
        op=sql.Identifier(OP_COLUMN),
        upsert=sql.Literal(OP_UPSERT),
        tomb=_tombstone_filter("s", keys, guard),
        keys=names(keys),
        skeys=names(keys, "s"),
        updates=sql.SQL(", ").join(updates),
        where=where,
    )


def delete_hard(target: sql.Identifier, staging: str, keys: Sequence[str], *, guard: Guard) -> sql.Composed:
    """``DELETE … USING`` the staged hard deletes; child rows go by the FK cascade."""
    return sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE {} AND s.{} = {} AND {}").format(
        target,
        sql.Identifier(staging),
        match("t", "s", keys),
        sql.Identifier(OP_COLUMN),
        sql.Literal(OP_DELETE),
        _row_guard("t", sql.Identifier("s", SEQ_COLUMN), guard),
    )


def delete_soft(target: sql.Identifier, staging: str, keys: Sequence[str], *, guard: Guard) -> sql.Composed:
    """Mark the keys of the staged soft deletes as deleted; the first deletion time is kept."""
    return sql.SQL(
        "UPDATE {target} AS t SET {deleted} = COALESCE(t.{deleted}, now()), {seq} = s.{seq}, {synced} = now()"
        " FROM {staging} AS s WHERE {match} AND s.{op} = {soft} AND {guard}"
    ).format(
        target=target,
        deleted=_DELETED,
        seq=_SEQ,
        synced=_SYNCED,
        staging=sql.Identifier(staging),
        match=match("t", "s", keys),
        op=sql.Identifier(OP_COLUMN),
        soft=sql.Literal(OP_SOFT_DELETE),
        guard=_row_guard("t", sql.Identifier("s", SEQ_COLUMN), guard),
    )


def write_tombstones(staging: str, keys: Sequence[str], *, guard: Guard) -> sql.Composed:
    """Record a tombstone per staged delete, but only while a backfill of the source table is running.

    The running-backfill test is inside the statement, so a batch pays one round trip whether or not a backfill
    runs. A stream tombstone replaces an older one (last wins, as for rows); a replayed one only raises the
    sequence. Parameters: ``%(target_table)s`` ("schema.table"), ``%(source_table)s`` (DynamoDB table name).
    """
    on_conflict = sql.SQL("")
    if guard == "replay":
        on_conflict = sql.SQL(" WHERE tb.sequence IS NULL OR tb.sequence < EXCLUDED.sequence")
    return sql.SQL(
        "INSERT INTO {tomb} AS tb (target_table, key, sequence) SELECT %(target_table)s, {key}, s.{seq}"
        " FROM {staging} AS s WHERE s.{op} <> {upsert} AND EXISTS (SELECT 1 FROM {backfills} AS b"
        " WHERE b.source_table = %(source_table)s AND b.finished_at IS NULL)"
        " ON CONFLICT (target_table, key) DO UPDATE SET sequence = EXCLUDED.sequence,"
        " deleted_at = now(){where}"
    ).format(
        tomb=TOMBSTONES,
        key=key_json("s", keys),
        seq=_SEQ,
        staging=sql.Identifier(staging),
        backfills=BACKFILLS,
        op=sql.Identifier(OP_COLUMN),
        upsert=sql.Literal(OP_UPSERT),
        where=on_conflict,
    )


def batch(
    keys: Sequence[str],
    *,
    merge: sql.Composable | None,
    delete_hard: sql.Composable | None,
    delete_soft: sql.Composable | None,
    tombstones: sql.Composable | None,
    applied_into: str | None = None,
) -> sql.Composed:
    """Every write of a batch in one statement (one round trip): data-modifying CTEs, then their counts.

    The result is one row: (upserts applied, rows hard-deleted, rows soft-deleted). After collapsing, upserted
    and deleted keys are disjoint, so the CTEs never touch the same row and their unspecified order does not
    matter. With ``applied_into`` the keys of the applied upserts are inserted into that table (their children
    are replaced next).
    """
    parts: list[sql.Composable] = []
    counts: list[sql.Composable] = []
    for name, stmt, returning in (
        ("merged", merge, names(keys, "t")),
        ("hard", delete_hard, sql.SQL("1")),
        ("soft", delete_soft, sql.SQL("1")),
    ):
        if stmt is None:
            counts.append(sql.SQL("0"))
            continue
        parts.append(sql.SQL("{} AS ({} RETURNING {})").format(sql.Identifier(name), stmt, returning))
        counts.append(sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(name)))
    if tombstones is not None:
        parts.append(sql.SQL("tombstoned AS ({})").format(tombstones))
    if applied_into is not None and merge is not None:
        parts.append(
            sql.SQL("applied AS (INSERT INTO {} ({}) SELECT {} FROM merged)").format(
                sql.Identifier(applied_into), names(keys), names(keys)
            )
        )
    return sql.SQL("WITH {} SELECT {}").format(sql.SQL(", ").join(parts), sql.SQL(", ").join(counts))


def delete_children(child: sql.Identifier, applied: str, parent_keys: Sequence[str]) -> sql.Composed:
    """Remove every child row of the parents listed in ``applied`` (their children are about to be replaced)."""
    return sql.SQL("DELETE FROM {} AS c USING {} AS a WHERE {}").format(
        child, sql.Identifier(applied), match("c", "a", parent_keys)
    )


def insert_children(
    child: sql.Identifier, staging: str, applied: str, columns: Sequence[str], parent_keys: Sequence[str]
) -> sql.Composed:
    """Insert the staged child rows whose parent upsert applied (``columns`` include the parent key)."""
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS cs JOIN {} AS a ON {}").format(
        child,
        names(columns),
        names(columns, "cs"),
        sql.Identifier(staging),
        sql.Identifier(applied),
        match("cs", "a", parent_keys),
    )
