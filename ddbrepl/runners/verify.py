"""`ddbrepl verify --table T [--repair] [--sample N]`: prove PostgreSQL holds what DynamoDB holds, row by row.

DynamoDB is scanned in parallel segments and every item converted with the table's mappings, exactly as a
backfill would. Converted rows go to PostgreSQL in chunks (COPY into a session-temporary table shaped like the
target), and PostgreSQL compares each chunk with the target by primary key, column by column with the columns'
own equality (``IS DISTINCT FROM``; json compared as jsonb): only the keys and column names of drifted rows travel
back. That is stricter than comparing row hashes (no collisions, no text-rendering pitfalls such as ``1.5`` vs
``1.50``) and just as cheap on the wire. The keys seen are kept in a second temporary table, so once the scan ends
one anti-join finds the *extra* rows (in PostgreSQL, not in DynamoDB). Python memory stays at a chunk per mapping
plus the pages in flight, whatever the table's size; only the first ``REPORT_KEYS`` keys per kind are kept.

``--repair`` writes the drift through the sink: missing and different rows as upserts with origin "repair" (no
guard: the scanned item is the truth), extra rows as deletes.

A scan is not a snapshot, and `tail` (or the Lambda function) may be writing while verify runs. Rows whose
``_ddb_synced_at`` is later than verify's start were written by the stream meanwhile: they are counted as *in
flux*, neither drift nor repaired (the stream is at least as new as the scan). A row about to be rewritten or
deleted is locked first (``FOR UPDATE``) and re-checked to predate verify, so a stream change committed meanwhile
wins and one arriving later waits for the repair, then applies on top. What remains is a window of milliseconds
for a *missing* row that the stream inserts between the check and the repair's commit. ``--sample N`` compares
about N items from random segments and skips the extra-row check.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ddbrepl.codec.rows import Converter
from ddbrepl.mapping.model import DELETED_COLUMN, SYNCED_COLUMN, Column
from ddbrepl.records import Delete, Page, RawChange, Rejected, Upsert
from ddbrepl.runners.common import aws_config, one_table, open_state
from ddbrepl.runners.events import plain
from ddbrepl.settings import Settings
from ddbrepl.sink.apply import apply
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.scan import describe_table, scan_segment
from ddbrepl.state.deadletters import to_json

log = logging.getLogger(__name__)
CHUNK = 5000
REPORT_KEYS = 100
SAMPLE_SEGMENTS = 64
PAGE_ITEMS = 1000
"""Scan ``Limit``: a 1 MB page of small items is thousands of items and tens of MB as Python objects; with
segments + 2 pages in memory at once, capping pages keeps verify's memory small (same read capacity, more calls)."""
_N = "_ddbrepl_n"


@dataclass
class MappingReport:
    """Drift found for one mapping; ``*_keys`` hold at most REPORT_KEYS keys each, the counts are exact."""

    mapping: str
    target: str
    key_columns: tuple[str, ...]
    compared: int = 0
    missing: int = 0
    different: int = 0
    extra: int = 0
    unconvertible: int = 0
    in_flux: int = 0
    """Rows written (by the stream) after verify began: compared against nothing stable, neither drift nor
    repaired."""
    repaired_upserts: int = 0
    repaired_deletes: int = 0
    missing_keys: list[dict[str, Any]] = field(default_factory=list)
    different_keys: list[dict[str, Any]] = field(default_factory=list)
    extra_keys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return self.missing + self.different + self.extra

    def key(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.key_columns, plain(list(values)), strict=True))


@dataclass
class VerifyReport:
    table: str
    items: int = 0
    seconds: float = 0.0
    sampled: bool = False
    repair: bool = False
    mappings: list[MappingReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No drift, or (with --repair) every drifted row written back."""
        if not self.repair:
            return all(m.drift == 0 for m in self.mappings)
        return all(m.repaired_upserts + m.repaired_deletes >= m.drift for m in self.mappings)

    def render(self) -> str:
        kind = f"sample of {self.items:,} items" if self.sampled else f"{self.items:,} items"
        lines = [f"verify {self.table}: {kind} scanned in {self.seconds:.1f}s"]
        for m in self.mappings:
            state = ("in sync" if m.drift == 0
                     else f"DRIFT: {m.missing} missing, {m.different} different, {m.extra} extra")
            lines.append(f"  {m.mapping} -> {m.target}: {m.compared:,} rows compared, {state}"
                         + (f", {m.unconvertible} unconvertible (see `ddbrepl dlq list`)" if m.unconvertible else "")
                         + (f", {m.in_flux} changed by the stream while verifying (not compared)"
                            if m.in_flux else ""))
            for label, keys in (("missing", m.missing_keys), ("different", m.different_keys),
                                ("extra", m.extra_keys)):
                for k in keys:
                    cols = k.get("columns")
                    key = {c: k[c] for c in m.key_columns}
                    lines.append(f"    {label:<9} {key}" + (f" columns {', '.join(cols)}" if cols else ""))
            shown = len(m.missing_keys) + len(m.different_keys) + len(m.extra_keys)
            if shown < m.drift:
                lines.append(f"    … and {m.drift - shown} more")
            if self.repair and m.drift:
                lines.append(f"    repaired: {m.repaired_upserts} upserted, {m.repaired_deletes} deleted")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table, "items": self.items, "seconds": round(self.seconds, 3), "sampled": self.sampled,
            "ok": self.ok, "repair": self.repair,
            "mappings": [{
                "mapping": m.mapping, "target": m.target, "compared": m.compared, "missing": m.missing,
                "different": m.different, "extra": m.extra, "unconvertible": m.unconvertible,
                "in_flux": m.in_flux,
                "repaired": {"upserts": m.repaired_upserts, "deletes": m.repaired_deletes},
                "missing_keys": m.missing_keys, "different_keys": m.different_keys, "extra_keys": m.extra_keys,
            } for m in self.mappings],
        }


class _Checker:
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
        self.ddl = (
            sql.SQL("DROP TABLE IF EXISTS {}, {}").format(self.chunk, self.seen),
            sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(self.chunk, cols, target),
            sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(self.chunk, sql.Identifier(_N)),
            sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(self.seen, keys, target),
        )
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
        self.find_extra = sql.SQL(
            "CREATE TEMP TABLE {x} AS SELECT row_number() OVER () AS {n}, {tkeys}, t.{synced} >= %(since)s AS flux"
            " FROM {target} AS t WHERE NOT EXISTS (SELECT 1 FROM {seen} AS s WHERE {match}){live}"
        ).format(x=self.extra_table, n=sql.Identifier(_N),
                 tkeys=sql.SQL(", ").join(sql.Identifier("t", k) for k in self.keys), synced=synced,
                 target=target, seen=self.seen, match=seen_match, live=live)
        self.page_extra = sql.SQL(
            "SELECT {n}, {keys} FROM {x} WHERE {n} > %s AND NOT flux ORDER BY {n} LIMIT %s").format(
            n=sql.Identifier(_N), keys=keys, x=self.extra_table)
        self.count_flux = sql.SQL("SELECT count(*) FROM {} WHERE flux").format(self.extra_table)
        xmatch = sql.SQL(" AND ").join(sql.SQL("x.{0} = t.{0}").format(sql.Identifier(k)) for k in self.keys)
        self.lock_extra = sql.SQL(
            "SELECT {xkeys} FROM {x} AS x JOIN {target} AS t ON {match} WHERE x.{n} = ANY(%(ns)s)"
            " AND t.{synced} < %(since)s FOR UPDATE OF t"
        ).format(xkeys=sql.SQL(", ").join(sql.Identifier("x", k) for k in self.keys), x=self.extra_table,
                 target=target, match=xmatch, n=sql.Identifier(_N), synced=synced)

    def create_tables(self) -> None:
        """(Re)create this session's temporary chunk and seen-keys tables."""
        for stmt in self.ddl:
            self.conn.execute(stmt)

    def _differs(self, column: Column) -> sql.Composable:
        name = sql.Identifier(column.name)
        if column.sql_type.base == "json":  # json has no equality operator; compare its jsonb value
            return sql.SQL("c.{0}::jsonb IS DISTINCT FROM t.{0}::jsonb").format(name)
        return sql.SQL("c.{0} IS DISTINCT FROM t.{0}").format(name)

    def take(self, change: RawChange) -> None:
        op = self.conv(change)
        if isinstance(op, Upsert):
            self.pending.append(op)
            if len(self.pending) >= CHUNK:
                self.flush()
        elif isinstance(op, Rejected):
            self.report.unconvertible += 1
            key = self._key_only(change)
            if key is not None:  # its row, if any, is not "extra": the dead letter explains it
                self.seen_only.append(key)

    def _key_only(self, change: RawChange) -> tuple[Any, ...] | None:
        try:
            return tuple(p.value(change.keys, change, None) for p in self.conv.key_plans)
        except Exception:
            return None

    def _row(self, op: Upsert, n: int) -> list[Any]:
        row = list(op.values)
        for i in self.json_at:
            if row[i] is not None and not isinstance(row[i], str):
                row[i] = to_json(row[i])
        row.append(n)
        return row

    def flush(self) -> None:
        """Compare the pending rows with the target (and repair them); remember their keys."""
        batch, self.pending = self.pending, []
        report = self.report
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("TRUNCATE {}").format(self.chunk))
            with cur.copy(self.copy_chunk) as copy:
                for n, op in enumerate(batch):
                    copy.write_row(self._row(op, n))
            with cur.copy(self.copy_seen) as copy:
                for op in batch:
                    copy.write_row(op.key)
                for key in self.seen_only:
                    copy.write_row(key)
            self.seen_only = []
            drifted = cur.execute(self.compare, {"since": self.since}).fetchall()
            report.compared += len(batch)
            missing_ops: list[Upsert] = []
            different_at: list[int] = []
            for n, missing, columns, flux in drifted:
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

    def extras(self) -> None:
        """After the full scan: rows of the target whose key DynamoDB did not yield (deleted when repairing)."""
        if self.pending or self.seen_only:
            self.flush()
        report = self.report
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.extra_table))
        self.conn.execute(sql.SQL("ANALYZE {}").format(self.seen))  # temp tables get no autovacuum statistics
        self.conn.execute(self.find_extra, {"since": self.since})
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


def _parallel_pages(client: Any, table: str, segments: int) -> Iterator[Page]:
    """Every page of a parallel scan, read by ``segments`` threads; at most segments + 2 pages in memory."""
    q: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Page | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read(segment: int) -> None:
        try:
            for page in scan_segment(client, table, segment, segments, None, limit=PAGE_ITEMS):
                if not put(page):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
            return
        put(None)

    with ThreadPoolExecutor(segments, thread_name_prefix="verify-scan") as pool:
        for s in range(segments):
            pool.submit(read, s)
        done = 0
        try:
            while done < segments:
                item = q.get()
                if item is None:
                    done += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()


def _sample_pages(client: Any, table: str, wanted: int) -> Iterator[Page]:
    """Pages of randomly chosen segments (of SAMPLE_SEGMENTS) until ``wanted`` items were yielded."""
    order = list(range(SAMPLE_SEGMENTS))
    random.shuffle(order)
    got = 0
    for segment in order:
        for page in scan_segment(client, table, segment, SAMPLE_SEGMENTS, None, limit=PAGE_ITEMS):
            items = list(page.items)[: wanted - got]
            got += len(items)
            yield Page(page.segment, items, page.resume_from)
            if got >= wanted:
                return


def verify(settings: Settings, table: str, *, repair: bool = False, sample: int | None = None,
           segments: int = 4) -> VerifyReport:
    """Compare ``table`` in DynamoDB with every mapping's target; with ``repair``, write the drift back."""
    plan = one_table(settings, table)
    client = dynamodb_client(aws_config(settings))
    info = describe_table(client, table)
    report = VerifyReport(table, sampled=sample is not None, repair=repair)
    started = time.monotonic()
    with open_state(settings) as conn:
        since_row = conn.execute("SELECT now()").fetchone()
        assert since_row is not None
        since: datetime = since_row[0]
        checkers = []
        for i, conv in enumerate(plan.converters):
            m = conv.mapping
            mr = MappingReport(m.name, str(m.target), tuple(c.name for c in m.key_columns))
            report.mappings.append(mr)
            checker = _Checker(conn, i, conv, mr, repair, since)
            checker.create_tables()
            checkers.append(checker)
        pages = _sample_pages(client, table, sample) if sample else _parallel_pages(client, table, segments)
        keys = info.key_names
        for page in pages:
            for item in page.items:
                change = RawChange("INSERT", {k: item[k] for k in keys if k in item}, item)
                for checker in checkers:
                    checker.take(change)
            report.items += len(page.items)
        for checker in checkers:
            if sample:
                if checker.pending or checker.seen_only:
                    checker.flush()
            else:
                checker.extras()
    report.seconds = time.monotonic() - started
    log.info("verify of %s: %d items, drift %s", table, report.items,
             {m.mapping: m.drift for m in report.mappings})
    return report
