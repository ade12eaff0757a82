"""The comparison `ddbrepl verify` runs for one mapping: a chunk of converted rows against the target, in SQL.

Each chunk is COPYed into a session-temporary table shaped like the target and compared by primary key, column by
column with the columns' own equality (``IS DISTINCT FROM``; json compared as jsonb). A mapping's child tables
are compared too: the chunk's expected child rows are COPYed into a temporary table per child table and
PostgreSQL takes the multiset difference (``EXCEPT ALL``, both ways) against the child rows the target holds for
those parents; a parent whose child rows differ is *different*, with the child table named among its columns, and
``--repair`` upserts it again (the sink replaces a parent's child rows with its upsert). Child rows of a parent
that is extra go with it (ON DELETE CASCADE). Only keys and column names of drifted rows travel back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ddbrepl.codec.rows import Converter
from ddbrepl.mapping.model import DELETED_COLUMN, SYNCED_COLUMN, Child, Column
from ddbrepl.records import Delete, RawChange, Rejected, Upsert
from ddbrepl.runners.verify_report import REPORT_KEYS, MappingReport
from ddbrepl.sink.apply import apply, json_ready

CHUNK = 5000
"""Converted rows compared per round trip."""
_N = "_ddbrepl_n"


def _temp_like(temp: sql.Identifier, columns: sql.Composable, source: sql.Identifier, *, numbered: bool
               ) -> tuple[sql.Composed, ...]:
    """A session-temporary table with ``columns`` of ``source`` (their exact types), plus a chunk position column
    when ``numbered``."""
    create = sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(temp, columns, source)
    if not numbered:
        return (create,)
    return create, sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(temp, sql.Identifier(_N))


def _value(alias: str, column: Column) -> sql.Composable:
    """``alias.column`` as compared: json has no equality operator, its jsonb value has."""
    ref = sql.Identifier(alias, column.name)
    return sql.SQL("{}::jsonb").format(ref) if column.sql_type.base == "json" else ref


class _ChildCheck:
    """One child table: which parents of the chunk have other child rows than expected."""

    def __init__(self, index: int, number: int, child: Child, chunk: sql.Identifier, on: sql.Composable,
                 parent_keys: list[str], target: sql.Identifier) -> None:
        self.name = child.target.table
        self.number = number
        self.json_at = [i for i, c in enumerate(child.columns) if c.sql_type.is_json]
        table = sql.Identifier(child.target.schema, child.target.table)
        self.temp = sql.Identifier(f"_ddbrepl_verify_child_{index}_{number}")
        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in child.columns)
        n = sql.Identifier(_N)
        self.ddl = (sql.SQL("DROP TABLE IF EXISTS {}").format(self.temp),
                    *_temp_like(self.temp, cols, table, numbered=True))
        self.truncate = sql.SQL("TRUNCATE {}").format(self.temp)
        self.copy = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(self.temp, cols, n)
        want = sql.SQL("SELECT w.{}, {} FROM {} AS w").format(
            n, sql.SQL(", ").join(_value("w", c) for c in child.columns), self.temp)
        parent = sql.SQL(" AND ").join(sql.SQL("k.{0} = p.{0}").format(sql.Identifier(k)) for k in parent_keys)
        have = sql.SQL("SELECT p.{}, {} FROM {} AS p JOIN {} AS k ON {}").format(
            n, sql.SQL(", ").join(_value("k", c) for c in child.columns), chunk, table, parent)
        self.differing = sql.SQL(
            "SELECT d.n, coalesce(t.{synced} >= %(since)s, false)"
            " FROM (SELECT DISTINCT n FROM (({want} EXCEPT ALL {have}) UNION ALL ({have} EXCEPT ALL {want}))"
            " AS x(n)) AS d JOIN {chunk} AS c ON c.{n} = d.n LEFT JOIN {target} AS t ON {on}"
        ).format(synced=sql.Identifier(SYNCED_COLUMN), want=want, have=have, chunk=chunk, n=n, target=target, on=on)

    def write(self, cur: psycopg.Cursor[Any], batch: list[Upsert]) -> None:
        """Empty the temporary table and COPY the batch's expected child rows of this table into it."""
        cur.execute(self.truncate)
        with cur.copy(self.copy) as copy:
            for n, op in enumerate(batch):
                for rows in op.children:
                    if rows.child == self.number:
                        for row in rows.rows:
                            copy.write_row([*json_ready(row, self.json_at), n])


class Checker:
    """The temporary tables and statements that compare one mapping's rows, a chunk at a time."""

    def __init__(self, conn: psycopg.Connection[Any], index: int, conv: Converter, report: MappingReport,
                 repair: bool, since: datetime) -> None:
        m = conv.mapping
        self.conn, self.conv, self.report, self.repair, self.since = conn, conv, report, repair, since
        self.pending: list[Upsert] = []
        self.seen_only: list[tuple[Any, ...]] = []
        self.columns = [c.name for c in m.columns]
        self.keys = [c.name for c in m.key_columns]
        self.json_at = [i for i, c in enumerate(m.columns) if c.sql_type.is_json]
        self.soft = m.delete == "soft" or m.ttl_delete == "soft"
        target = sql.Identifier(m.target.schema, m.target.table)
        self.chunk = sql.Identifier(f"_ddbrepl_verify_chunk_{index}")
        self.seen = sql.Identifier(f"_ddbrepl_verify_seen_{index}")
        cols = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        keys = sql.SQL(", ").join(map(sql.Identifier, self.keys))
        self.ddl = (sql.SQL("DROP TABLE IF EXISTS {}, {}").format(self.chunk, self.seen),
                    *_temp_like(self.chunk, cols, target, numbered=True),
                    *_temp_like(self.seen, keys, target, numbered=False))
        self.copy_chunk = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(self.chunk, cols, sql.Identifier(_N))
        self.copy_seen = sql.SQL("COPY {} ({}) FROM STDIN").format(self.seen, keys)
        on = sql.SQL(" AND ").join(sql.SQL("t.{0} = c.{0}").format(sql.Identifier(k)) for k in self.keys)
        if self.soft:
            on = on + sql.SQL(" AND t.{} IS NULL").format(sql.Identifier(DELETED_COLUMN))
        diffs = [self._differs(c) for c in m.columns if c.name not in self.keys]
        names = sql.SQL(", ").join(
            sql.SQL("CASE WHEN {} THEN {} END").format(d, sql.Literal(c.name))
            for d, c in zip(diffs, [c for c in m.columns if c.name not in self.keys], strict=True))
        synced = sql.Identifier(SYNCED_COLUMN)
        self.compare = sql.SQL(
            "SELECT c.{n}, t.{k} IS NULL, {cols}, coalesce(t.{synced} >= %(since)s, false)"
            " FROM {chunk} AS c LEFT JOIN {target} AS t ON {on} WHERE t.{k} IS NULL{any} ORDER BY c.{n}"
        ).format(
            n=sql.Identifier(_N), k=sql.Identifier(self.keys[0]), chunk=self.chunk, target=target, on=on,
            synced=synced,
            cols=sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(names) if diffs else sql.SQL("'{}'::text[]"),
            any=sql.SQL(" OR ") + sql.SQL(" OR ").join(diffs) if diffs else sql.SQL(""),
        )
        # Rows about to be rewritten are locked first and must still predate verify: a stream change committed
        # since then is newer than the scan (it wins); one arriving later waits for the lock, then overwrites.
        self.lock_rows = sql.SQL(
            "SELECT c.{n} FROM {chunk} AS c JOIN {target} AS t ON {on} WHERE c.{n} = ANY(%(ns)s)"
            " AND t.{synced} < %(since)s FOR UPDATE OF t"
        ).format(n=sql.Identifier(_N), chunk=self.chunk, target=target, on=on, synced=synced)
        seen_match = sql.SQL(" AND ").join(sql.SQL("s.{0} = t.{0}").format(sql.Identifier(k)) for k in self.keys)
        live = sql.SQL(" AND t.{} IS NULL").format(sql.Identifier(DELETED_COLUMN)) if self.soft else sql.SQL("")
        self.extra_table = sql.Identifier(f"_ddbrepl_verify_extra_{index}")
        find = sql.SQL(
            "CREATE TEMP TABLE {x} AS SELECT row_number() OVER () AS {n}, {tkeys}, t.{synced} >= %(since)s AS flux"
            " FROM {target} AS t WHERE {exists} (SELECT 1 FROM {seen} AS s WHERE {match}){live}")
        tkeys = sql.SQL(", ").join(sql.Identifier("t", k) for k in self.keys)
        self.find_extra, self.find_listed_extra = (find.format(
            x=self.extra_table, n=sql.Identifier(_N), tkeys=tkeys, synced=synced, target=target,
            exists=sql.SQL(exists), seen=self.seen, match=seen_match, live=live)
            for exists in ("NOT EXISTS", "EXISTS"))  # keys the scan did not see; keys listed as gone
        self.page_extra = sql.SQL(
            "SELECT {n}, {keys} FROM {x} WHERE {n} > %s AND NOT flux ORDER BY {n} LIMIT %s").format(
            n=sql.Identifier(_N), keys=keys, x=self.extra_table)
        self.count_flux = sql.SQL("SELECT count(*) FROM {} WHERE flux").format(self.extra_table)
        xmatch = sql.SQL(" AND ").join(sql.SQL("x.{0} = t.{0}").format(sql.Identifier(k)) for k in self.keys)
        self.children = [_ChildCheck(index, j, child, self.chunk, on, self.keys, target)
                         for j, child in enumerate(m.children)]
        self.lock_extra = sql.SQL(
            "SELECT {xkeys} FROM {x} AS x JOIN {target} AS t ON {match} WHERE x.{n} = ANY(%(ns)s)"
            " AND t.{synced} < %(since)s FOR UPDATE OF t"
        ).format(xkeys=sql.SQL(", ").join(sql.Identifier("x", k) for k in self.keys), x=self.extra_table,
                 target=target, match=xmatch, n=sql.Identifier(_N), synced=synced)

    def create_tables(self) -> None:
        """(Re)create this session's temporary chunk and seen-keys tables."""
        for stmt in (*self.ddl, *(s for child in self.children for s in child.ddl)):
            self.conn.execute(stmt)

    def _differs(self, column: Column) -> sql.Composable:
        return sql.SQL("{} IS DISTINCT FROM {}").format(_value("c", column), _value("t", column))

    def take(self, change: RawChange) -> None:
        op = self.conv(change)
        if isinstance(op, Upsert):
            self.pending.append(op)
            if len(self.pending) >= CHUNK:
                self.flush()
        elif isinstance(op, Rejected):
            self.report.unconvertible += 1
            key = self.key_only(change)
            if key is not None:  # its row, if any, is not "extra": the dead letter explains it
                self.seen_only.append(key)

    def key_only(self, change: RawChange) -> tuple[Any, ...] | None:
        try:
            return tuple(p.value(change.keys, change, None) for p in self.conv.key_plans)
        except Exception:
            return None

    def flush(self) -> None:
        """Compare the pending rows with the target (and repair them); remember their keys."""
        batch, self.pending = self.pending, []
        report = self.report
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("TRUNCATE {}").format(self.chunk))
            with cur.copy(self.copy_chunk) as copy:
                for n, op in enumerate(batch):
                    copy.write_row([*json_ready(op.values, self.json_at), n])
            with cur.copy(self.copy_seen) as copy:
                for op in batch:
                    copy.write_row(op.key)
                for key in self.seen_only:
                    copy.write_row(key)
            self.seen_only = []
            drifted = self._drifted(cur, batch)
            report.compared += len(batch)
            missing_ops: list[Upsert] = []
            different_at: list[int] = []
            for n in sorted(drifted):
                missing, columns, flux = drifted[n]
                op = batch[n]
                if flux:
                    report.in_flux += 1
                    continue
                if missing:
                    missing_ops.append(op)
                else:
                    different_at.append(n)
                if missing:
                    report.missing += 1
                    if len(report.missing_keys) < REPORT_KEYS:
                        report.missing_keys.append(report.key(op.key))
                else:
                    report.different += 1
                    if len(report.different_keys) < REPORT_KEYS:
                        report.different_keys.append({**report.key(op.key), "columns": list(columns)})
            if self.repair and (missing_ops or different_at):
                locked = [r[0] for r in cur.execute(self.lock_rows, {"ns": different_at, "since": self.since})]
                report.in_flux += len(different_at) - len(locked)  # rewritten by the stream meanwhile
                report.different -= len(different_at) - len(locked)
                stats = apply(self.conn, self.conv.mapping, [*missing_ops, *(batch[n] for n in locked)],
                              origin="repair")
                report.repaired_upserts += stats.upserts

    def _drifted(self, cur: psycopg.Cursor[Any], batch: list[Upsert]) -> dict[int, tuple[bool, list[str], bool]]:
        """Chunk position → (missing, differing columns and child tables, written by the stream since)."""
        params = {"since": self.since}
        drifted = {n: (missing, list(columns), flux) for n, missing, columns, flux in cur.execute(self.compare, params)}
        for child in self.children:
            child.write(cur, batch)
            for n, flux in cur.execute(child.differing, params).fetchall():
                if n not in drifted:
                    drifted[n] = (False, [child.name], flux)
                elif not drifted[n][0]:  # a missing parent's children are missing with it
                    drifted[n][1].append(child.name)
        return drifted

    def extras(self) -> None:
        """After the full scan: rows of the target whose key DynamoDB did not yield (deleted when repairing)."""
        if self.pending or self.seen_only:
            self.flush()
        self._extras(self.find_extra)

    def listed_extras(self, keys: list[tuple[Any, ...]]) -> None:
        """Rows of the target with these primary keys are extra (a sampled verify found their items gone)."""
        if self.pending or self.seen_only:
            self.flush()
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("TRUNCATE {}").format(self.seen))
            with cur.copy(self.copy_seen) as copy:
                for key in keys:
                    copy.write_row(key)
        self._extras(self.find_listed_extra)

    def _extras(self, find: sql.Composed) -> None:
        report = self.report
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.extra_table))
        self.conn.execute(sql.SQL("ANALYZE {}").format(self.seen))  # temp tables get no autovacuum statistics
        self.conn.execute(find, {"since": self.since})
        row = self.conn.execute(self.count_flux).fetchone()
        report.in_flux += int(row[0]) if row else 0
        after = 0
        while True:
            rows = self.conn.execute(self.page_extra, (after, CHUNK)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            keys = [tuple(r[1:]) for r in rows]
            report.extra += len(keys)
            for key in keys[: max(0, REPORT_KEYS - len(report.extra_keys))]:
                report.extra_keys.append(report.key(key))
            if self.repair:
                with self.conn.transaction():
                    ns = [r[0] for r in rows]
                    locked = [tuple(r) for r in self.conn.execute(self.lock_extra, {"ns": ns, "since": self.since})]
                    report.in_flux += len(keys) - len(locked)
                    report.extra -= len(keys) - len(locked)
                    stats = apply(self.conn, self.conv.mapping, [Delete(k, None, self.soft) for k in locked],
                                  origin="repair")
                report.repaired_deletes += stats.deletes
