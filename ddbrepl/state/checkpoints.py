"""Stream positions: one ``ddbrepl.checkpoints`` row per (stream ARN, shard), and the stream each table follows.

A checkpoint holds the last *applied* sequence number of a shard (``numeric(40,0)`` in PostgreSQL, ``int`` here),
whether the shard is finished (closed and read to its end), how many stream records were taken from it and the
``ApproximateCreationDateTime`` of the last one. :func:`advance` runs inside the runner's apply transaction, so the
rows and the position commit together, and it is fenced by the shard's lease (owner and epoch): a worker that lost
its lease gets :class:`ddbrepl.errors.LeaseLost` and its transaction rolls back.

``ddbrepl.streams`` remembers the stream ARN each source table is followed on. Disabling and re-enabling a stream
gives a new ARN, and writes made in between were never captured: :func:`follow` refuses the new ARN unless told
to accept it (after a new backfill).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ddbrepl.errors import Fatal, LeaseLost
from ddbrepl.records import Shard
from ddbrepl.state import leases


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream_arn: str
    shard_id: str
    source_table: str
    parent_id: str | None
    sequence: int | None
    """Last applied sequence number in this shard; None: nothing applied yet (start at TRIM_HORIZON)."""
    finished: bool
    records: int
    """Stream records taken from this shard (applied, or skipped as older than the backfill), each once."""
    last_event_at: datetime | None


_COLUMNS = "stream_arn, shard_id, source_table, parent_shard_id, sequence, finished, records, last_event_at"


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    arn, shard, table, parent, seq, finished, records, last = row
    return Checkpoint(arn, shard, table, parent, None if seq is None else int(seq), finished, int(records), last)


def register(conn: psycopg.Connection[Any], source_table: str, arn: str, shards: Iterable[Shard]) -> int:
    """Create the checkpoint and (free) lease rows of newly listed shards; returns how many were new.

    One statement per table, whatever the number of shards; existing rows are left alone.
    """
    listed = list(shards)
    if not listed:
        return 0
    ids = [s.id for s in listed]
    parents = [s.parent_id for s in listed]
    cur = conn.execute(
        "INSERT INTO ddbrepl.checkpoints (stream_arn, shard_id, source_table, parent_shard_id) "
        "SELECT %s, s, %s, p FROM unnest(%s::text[], %s::text[]) AS u(s, p) ON CONFLICT DO NOTHING",
        (arn, source_table, ids, parents))
    leases.register(conn, arn, ids)
    return max(cur.rowcount, 0)


def load(conn: psycopg.Connection[Any], arn: str) -> dict[str, Checkpoint]:
    """Every checkpoint of a stream, by shard id."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM ddbrepl.checkpoints WHERE stream_arn = %s", (arn,)).fetchall()
    return {r[1]: _checkpoint(r) for r in rows}


def get(conn: psycopg.Connection[Any], arn: str, shard_id: str) -> Checkpoint | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM ddbrepl.checkpoints WHERE stream_arn = %s AND shard_id = %s",
                       (arn, shard_id)).fetchone()
    return _checkpoint(row) if row else None


def has_progress(conn: psycopg.Connection[Any], source_table: str) -> bool:
    """True when any shard of the table's followed streams has applied a record or finished."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM ddbrepl.checkpoints WHERE source_table = %s "
                       "AND (sequence IS NOT NULL OR finished))", (source_table,)).fetchone()
    return bool(row and row[0])


def advance(conn: psycopg.Connection[Any], arn: str, shard_id: str, *, sequence: int | None, records: int,
            last_event_at: datetime | None, finished: bool, owner: str, epoch: int, lease_seconds: float) -> None:
    """Record one applied batch of a shard, inside the caller's transaction, fenced by the lease.

    The lease row is updated first (renewing it, and locking it so that a concurrent steal waits for this commit);
    zero rows means another worker owns the shard now: :class:`LeaseLost`, and the caller rolls back. ``sequence``
    None keeps the stored position (an empty final page of a closed shard). ``finished`` also gives the lease back.
    """
    leases.fence(conn, arn, shard_id, owner, epoch, lease_seconds, release=finished)
    cur = conn.execute(
        "UPDATE ddbrepl.checkpoints SET sequence = coalesce(%s, sequence), records = records + %s, "
        "last_event_at = coalesce(%s, last_event_at), finished = finished OR %s, updated_at = now() "
        "WHERE stream_arn = %s AND shard_id = %s AND NOT finished",
        (sequence, records, last_event_at, finished, arn, shard_id))
    if cur.rowcount != 1:
        raise LeaseLost(f"shard {shard_id} is already finished or unknown in {arn}",
                        hint="another worker finished it; this batch was rolled back")


@dataclass(frozen=True, slots=True)
class Followed:
    source_table: str
    stream_arn: str
    view_type: str | None
    started_at: datetime
    """When ddbrepl first followed this stream: ``--from latest`` skips changes older than this."""


def followed(conn: psycopg.Connection[Any], source_table: str) -> Followed | None:
    row = conn.execute("SELECT source_table, stream_arn, view_type, started_at FROM ddbrepl.streams "
                       "WHERE source_table = %s", (source_table,)).fetchone()
    return Followed(*row) if row else None


def follow(conn: psycopg.Connection[Any], source_table: str, arn: str, view_type: str | None, *,
           accept_new: bool = False) -> Followed:
    """Record (or check) the stream ARN that ``source_table`` is followed on.

    A different ARN than the recorded one means the stream was disabled and re-enabled (or recreated with the
    table): the changes in between were never captured. Raise :class:`Fatal` with the fix, unless ``accept_new``
    (the user re-ran the backfill), in which case the new ARN is recorded and followed from now on.
    """
    known = followed(conn, source_table)
    if known is not None and known.stream_arn != arn:
        if not accept_new:
            raise Fatal(
                f"the stream of {source_table!r} changed from {known.stream_arn} to {arn}: it was disabled and "
                "re-enabled (or the table recreated), and changes made in between were never captured",
                hint=f"run `ddbrepl backfill --table {source_table} --restart`, then "
                     "`ddbrepl tail --accept-new-stream` to follow the new stream")
        conn.execute("UPDATE ddbrepl.streams SET stream_arn = %s, view_type = %s, started_at = now(), "
                     "last_error = NULL, updated_at = now() WHERE source_table = %s", (arn, view_type, source_table))
    elif known is None:
        conn.execute("INSERT INTO ddbrepl.streams (source_table, stream_arn, view_type) VALUES (%s, %s, %s) "
                     "ON CONFLICT (source_table) DO NOTHING", (source_table, arn, view_type))
    now = followed(conn, source_table)
    assert now is not None
    if now.stream_arn != arn:  # another process recorded a different ARN at the same moment
        raise Fatal(f"the stream of {source_table!r} is recorded as {now.stream_arn}, not {arn}",
                    hint="run the command again")
    return now
