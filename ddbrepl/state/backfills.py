"""Backfill runs and their segments (scan segments or export files): start, claim, advance, finish.

A run is one row of ``ddbrepl.backfills`` per DynamoDB table; its units of work are rows of
``ddbrepl.backfill_segments``. A worker claims a segment with a session-level advisory lock taken on its own
connection: PostgreSQL releases it the moment the worker's connection ends, so a backfill killed with SIGKILL
leaves no stale claim, and two processes never load one segment at once. Each page's rows and the segment's new
``resume_key`` are committed in one transaction by the runner (`advance`), so a restart repeats at most the page
that was in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ddbrepl.errors import Fatal, LeaseLost

_LOCK_NAMESPACE = "ddbrepl.backfill:"


@dataclass(frozen=True, slots=True)
class Run:
    source_table: str
    kind: str
    source: str | None
    total_segments: int
    started_at: datetime
    point_in_time: datetime
    finished_at: datetime | None
    items: int
    total_items: int | None


@dataclass(frozen=True, slots=True)
class Segment:
    segment: int
    name: str | None
    resume_key: dict[str, Any] | None
    done: bool
    items: int


def get(conn: psycopg.Connection[Any], source_table: str) -> Run | None:
    """The recorded run for ``source_table``, finished or not."""
    row = conn.execute(
        "SELECT source_table, kind, source, total_segments, started_at, point_in_time, finished_at, items, "
        "total_items FROM ddbrepl.backfills WHERE source_table = %s", (source_table,)).fetchone()
    return Run(*row) if row else None


def start(conn: psycopg.Connection[Any], source_table: str, *, kind: str, source: str | None,
          point_in_time: datetime, total_items: int | None, segments: Sequence[str | None]) -> Run:
    """Record a new run with one unit per entry of ``segments`` (a name for export files, None for scan
    segments); raises when a run already exists (the caller resumes it or resets first)."""
    try:
        conn.execute(
            "INSERT INTO ddbrepl.backfills (source_table, kind, source, total_segments, point_in_time, total_items) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (source_table, kind, source, len(segments), point_in_time, total_items))
    except psycopg.errors.UniqueViolation:
        raise Fatal(f"a backfill of {source_table!r} was started concurrently", "run the command again") from None
    with conn.cursor() as cur, cur.copy(
            "COPY ddbrepl.backfill_segments (source_table, segment, name) FROM STDIN") as copy:
        for i, name in enumerate(segments):
            copy.write_row((source_table, i, name))
    run = get(conn, source_table)
    assert run is not None
    return run


def reset(conn: psycopg.Connection[Any], source_table: str) -> None:
    """Forget the run of ``source_table`` and its segments (``--restart``)."""
    conn.execute("DELETE FROM ddbrepl.backfills WHERE source_table = %s", (source_table,))


def segments(conn: psycopg.Connection[Any], source_table: str) -> list[Segment]:
    rows = conn.execute(
        "SELECT segment, name, resume_key, done, items FROM ddbrepl.backfill_segments WHERE source_table = %s "
        "ORDER BY segment", (source_table,)).fetchall()
    return [Segment(*r) for r in rows]


def try_claim(conn: psycopg.Connection[Any], source_table: str, segment: int) -> Segment | None:
    """Take the session lock of one unfinished segment and return its current state; None when another worker
    holds it or it is done. ``conn`` must be in autocommit mode between transactions (the lock is per session)."""
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), %s)",
                       (_LOCK_NAMESPACE + source_table, segment)).fetchone()
    if not got or not got[0]:
        return None
    row = conn.execute(
        "SELECT segment, name, resume_key, done, items FROM ddbrepl.backfill_segments "
        "WHERE source_table = %s AND segment = %s", (source_table, segment)).fetchone()
    if row is None or row[3]:
        release(conn, source_table, segment)
        return None
    return Segment(*row)


def claim_next(conn: psycopg.Connection[Any], source_table: str, worker: str) -> Segment | None:
    """Claim the first unfinished segment nobody holds, or None when none is left to take; segments marked
    failed in this run (:func:`fail`) are passed over."""
    todo = conn.execute(
        "SELECT segment FROM ddbrepl.backfill_segments WHERE source_table = %s AND NOT done AND error IS NULL "
        "ORDER BY segment", (source_table,)).fetchall()
    for (segment,) in todo:
        claimed = try_claim(conn, source_table, segment)
        if claimed is not None:
            conn.execute("UPDATE ddbrepl.backfill_segments SET claimed_by = %s, updated_at = now() "
                         "WHERE source_table = %s AND segment = %s", (worker, source_table, segment))
            return claimed
    return None


def fail(conn: psycopg.Connection[Any], source_table: str, segment: int, reason: str) -> None:
    """Mark a segment (an export file) failed for the rest of this run: no loader of any process claims it again."""
    conn.execute("UPDATE ddbrepl.backfill_segments SET error = %s, updated_at = now() "
                 "WHERE source_table = %s AND segment = %s", (reason, source_table, segment))


def clear_failures(conn: psycopg.Connection[Any], source_table: str) -> None:
    """A new invocation retries the segments an earlier one marked failed."""
    conn.execute("UPDATE ddbrepl.backfill_segments SET error = NULL WHERE source_table = %s AND error IS NOT NULL",
                 (source_table,))


def release(conn: psycopg.Connection[Any], source_table: str, segment: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s), %s)", (_LOCK_NAMESPACE + source_table, segment))


def advance(conn: psycopg.Connection[Any], source_table: str, segment: int, *, resume_key: Mapping[str, Any] | None,
            items: int, done: bool) -> None:
    """Record one committed page of ``segment`` (inside the runner's transaction, with the page's rows)."""
    cur = conn.execute(
        "UPDATE ddbrepl.backfill_segments SET resume_key = %s, items = items + %s, pages = pages + 1, done = %s, "
        "updated_at = now() WHERE source_table = %s AND segment = %s AND NOT done",
        (Jsonb(dict(resume_key)) if resume_key is not None else None, items, done, source_table, segment))
    if cur.rowcount != 1:
        raise LeaseLost(f"segment {segment} of {source_table!r} was finished or reset by another process")
    conn.execute("UPDATE ddbrepl.backfills SET items = items + %s WHERE source_table = %s", (items, source_table))


def finish(conn: psycopg.Connection[Any], source_table: str) -> bool:
    """Mark the run finished when every segment is done; True if this call finished it."""
    cur = conn.execute(
        "UPDATE ddbrepl.backfills b SET finished_at = now() WHERE source_table = %s AND finished_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM ddbrepl.backfill_segments s WHERE s.source_table = b.source_table "
        "AND NOT s.done)", (source_table,))
    return cur.rowcount == 1
