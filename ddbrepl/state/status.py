"""Read-only views of the control schema for `ddbrepl status`: streams, shard checkpoints with their leases,
backfill segment progress and open dead letters. Each function is one query; none writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from ddbrepl.state import leases


@dataclass(frozen=True, slots=True)
class StreamState:
    """The stream ddbrepl follows for a table (``ddbrepl.streams``)."""

    stream_arn: str
    view_type: str | None
    started_at: datetime
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ShardState:
    """One shard's checkpoint and lease. ``lag_seconds``: now minus the last applied record's approximate creation
    time (None before the first record); on a quiet shard it grows although nothing is pending."""

    stream_arn: str
    shard_id: str
    parent_shard_id: str | None
    sequence: int | None
    finished: bool
    records: int
    last_event_at: datetime | None
    updated_at: datetime
    lag_seconds: float | None
    owner: str | None
    epoch: int | None
    lease_expires_at: datetime | None
    lease_live: bool


@dataclass(frozen=True, slots=True)
class SegmentProgress:
    total: int
    done: int
    items: int
    claimed: int


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    open: int
    last_reason: str | None
    last_seen: datetime | None


def stream(conn: psycopg.Connection[Any], source_table: str) -> StreamState | None:
    row = conn.execute(
        "SELECT stream_arn, view_type, started_at, last_error, updated_at FROM ddbrepl.streams"
        " WHERE source_table = %s", (source_table,)).fetchone()
    return StreamState(*row) if row else None


def shards(conn: psycopg.Connection[Any], source_table: str) -> list[ShardState]:
    """Every checkpointed shard of the table (all streams it ever had), parents first, with its lease if any."""
    rows = conn.execute(
        "SELECT c.stream_arn, c.shard_id, c.parent_shard_id, c.sequence, c.finished, c.records, c.last_event_at,"
        " c.updated_at, CASE WHEN c.last_event_at IS NULL THEN NULL"
        "   ELSE extract(epoch FROM clock_timestamp() - c.last_event_at) END,"
        " l.owner, l.epoch, l.expires_at, coalesce(" + leases.live_sql("l.") + ", false)"
        " FROM ddbrepl.checkpoints AS c LEFT JOIN ddbrepl.leases AS l"
        "   ON l.stream_arn = c.stream_arn AND l.shard_id = c.shard_id"
        " WHERE c.source_table = %s ORDER BY c.stream_arn, c.finished DESC, c.shard_id", (source_table,)).fetchall()
    return [
        ShardState(r[0], r[1], r[2], None if r[3] is None else int(r[3]), r[4], r[5], r[6], r[7],
                   None if r[8] is None else float(Decimal(r[8])), r[9], r[10], r[11], r[12])
        for r in rows
    ]


def segment_progress(conn: psycopg.Connection[Any], source_table: str) -> SegmentProgress:
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE done), coalesce(sum(items), 0),"
        " count(*) FILTER (WHERE claimed_by IS NOT NULL AND NOT done)"
        " FROM ddbrepl.backfill_segments WHERE source_table = %s", (source_table,)).fetchone()
    assert row is not None  # an aggregate always returns a row
    return SegmentProgress(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def dead_letters(conn: psycopg.Connection[Any], source_table: str) -> dict[str, DeadLetterSummary]:
    """Open dead letters per mapping of the table, with the latest reason."""
    rows = conn.execute(
        "SELECT DISTINCT ON (mapping) mapping, count(*) OVER (PARTITION BY mapping), reason, last_seen"
        " FROM ddbrepl.dead_letters WHERE source_table = %s AND resolved_at IS NULL"
        " ORDER BY mapping, last_seen DESC, id DESC", (source_table,)).fetchall()
    return {r[0]: DeadLetterSummary(int(r[1]), r[2], r[3]) for r in rows}
