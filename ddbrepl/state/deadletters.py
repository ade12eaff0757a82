"""Dead letters: changes the codec could not convert, kept exactly as read until an operator replays or drops them.

``ddbrepl.dead_letters.record`` holds the raw change as JSON: ``event``, ``keys``, ``new_image``, ``old_image``
(DynamoDB JSON, B values base64 as in exports and Lambda events, numbers exact), ``sequence`` (a string of
digits: sequence numbers exceed 64 bits), ``approx_time`` (ISO-8601), ``ttl_delete``, ``event_id``. The same
change rejected again while its dead letter is open (a replay that fails again, a restarted backfill) bumps
``attempts`` and ``last_seen`` instead of adding a row. Every function runs in the caller's transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg import sql

from ddbrepl.records import RawChange, Rejected

TABLE = sql.Identifier("ddbrepl", "dead_letters")
STAGING = "_ddbrepl_dead_letters"
COLUMNS = (
    "source_table",
    "mapping",
    "target_table",
    "origin",
    "record",
    "key",
    "sequence",
    "reason",
    "column_name",
    "path",
    "value_excerpt",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One open (or resolved) dead letter, with the change rebuilt so that it can be converted again."""

    id: int
    mapping: str
    source_table: str
    target_table: str
    origin: str
    change: RawChange
    reason: str
    column: str | None
    path: str | None
    value_excerpt: str | None
    first_seen: datetime
    last_seen: datetime
    attempts: int
    resolved_at: datetime | None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value)
    inner = getattr(value, "value", None)  # boto3.dynamodb.types.Binary
    if isinstance(inner, bytes):
        return base64.b64encode(inner).decode("ascii")
    return repr(value)


def _storable(value: Any) -> Any:
    """A copy PostgreSQL jsonb accepts: NUL becomes the text ``\\x00``, lone surrogates are escaped, and
    integers beyond 64 bits stay exact numbers. Only used when the fast path fails (rare)."""
    if isinstance(value, str):
        text = value.replace("\x00", "\\x00")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_storable(_default(v) if isinstance(v, bytes) else v) for v in items]
    return value


def to_json(value: Any) -> str:
    """Serialise a DynamoDB-JSON structure to JSON text that jsonb stores exactly (see module docstring)."""
    try:
        text = orjson.dumps(value, default=_default).decode("utf-8")
    except orjson.JSONEncodeError:
        text = orjson.dumps(_storable(value), default=_default).decode("utf-8")
    if "\\u0000" in text:
        text = orjson.dumps(_storable(value), default=_default).decode("utf-8")
    return text


def change_record(change: RawChange) -> dict[str, Any]:
    """The raw change as stored in ``dead_letters.record``."""
    return {
        "event": change.event,
        "keys": change.keys,
        "new_image": change.new_image,
        "old_image": change.old_image,
        "sequence": None if change.sequence is None else str(change.sequence),
        "approx_time": None if change.approx_time is None else change.approx_time.isoformat(),
        "ttl_delete": change.ttl_delete,
        "event_id": change.event_id,
    }


def change_from_record(record: dict[str, Any]) -> RawChange:
    """Rebuild the RawChange a dead letter holds; B values come back as base64 strings (the codec takes both)."""
    seq = record.get("sequence")
    when = record.get("approx_time")
    return RawChange(
        event=record["event"],
        keys=record.get("keys") or {},
        new_image=record.get("new_image"),
        old_image=record.get("old_image"),
        sequence=None if seq is None else int(seq),
        approx_time=None if when is None else datetime.fromisoformat(when),
        ttl_delete=bool(record.get("ttl_delete", False)),
        event_id=record.get("event_id"),
    )


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\\x00")


def record(
    conn: psycopg.Connection[Any],
    rejected: Sequence[Rejected],
    *,
    source_table: str,
    target_table: str,
    origin: str,
) -> int:
    """Write ``rejected`` set-based (one COPY, one UPDATE, one INSERT); returns the number of new dead letters.

    A change already held by an open dead letter of the same mapping (same raw record) is not duplicated: its
    ``attempts`` goes up by one and ``reason``/``column``/``path``/``value_excerpt`` take the latest values.
    The lookup goes through the index on (mapping, key) of open dead letters (migration 0003), so its cost does
    not grow with the number of open dead letters.
    """
    if not rejected:
        return 0
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                sql.Identifier(STAGING), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), TABLE
            )
        )
        copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(STAGING), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with cur.copy(copy_stmt) as copy:
            for r in rejected:
                change = r.change
                copy.write_row(
                    (
                        source_table,
                        r.mapping,
                        target_table,
                        origin,
                        to_json(change_record(change)),
                        to_json(change.keys),
                        change.sequence,
                        _text(r.reason),
                        _text(r.column),
                        _text(r.path),
                        _text(r.value_excerpt),
                    )
                )
        cur.execute(
            sql.SQL(
                "UPDATE {t} AS d SET attempts = d.attempts + 1, last_seen = now(), reason = s.reason,"
                " column_name = s.column_name, path = s.path, value_excerpt = s.value_excerpt"
                " FROM (SELECT DISTINCT ON (mapping, record) * FROM {s} ORDER BY mapping, record) AS s"
                " WHERE d.resolved_at IS NULL AND d.mapping = s.mapping AND d.key = s.key AND d.record = s.record"
            ).format(t=TABLE, s=sql.Identifier(STAGING))
        )
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} ({c}) SELECT DISTINCT ON (s.mapping, s.record) {c} FROM {s} AS s"
                " WHERE NOT EXISTS (SELECT 1 FROM {t} AS d WHERE d.resolved_at IS NULL AND d.mapping = s.mapping"
                " AND d.key = s.key AND d.record = s.record) ORDER BY s.mapping, s.record"
            ).format(t=TABLE, c=cols, s=sql.Identifier(STAGING))
        )
        inserted = cur.rowcount
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(STAGING)))
    return inserted


_SELECT = sql.SQL(
    "SELECT id, mapping, source_table, target_table, origin, record, reason, column_name, path, value_excerpt,"
    " first_seen, last_seen, attempts, resolved_at FROM {} AS d"
).format(TABLE)


def list_open(
    conn: psycopg.Connection[Any],
    *,
    mapping: str | None = None,
    source_table: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[DeadLetter]:
    """Open dead letters in id order, at most ``limit``; page with ``after_id`` = the last id seen."""
    where = [sql.SQL("d.resolved_at IS NULL"), sql.SQL("d.id > %(after)s")]
    if mapping is not None:
        where.append(sql.SQL("d.mapping = %(mapping)s"))
    if source_table is not None:
        where.append(sql.SQL("d.source_table = %(source)s"))
    stmt = _SELECT + sql.SQL(" WHERE {} ORDER BY d.id LIMIT %(limit)s").format(sql.SQL(" AND ").join(where))
    params = {"after": after_id, "mapping": mapping, "source": source_table, "limit": limit}
    with conn.cursor() as cur:
        rows = cur.execute(stmt, params).fetchall()
    return [
        DeadLetter(
            id=row[0],
            mapping=row[1],
            source_table=row[2],
            target_table=row[3],
            origin=row[4],
            change=change_from_record(row[5]),
            reason=row[6],
            column=row[7],
            path=row[8],
            value_excerpt=row[9],
            first_seen=row[10],
            last_seen=row[11],
            attempts=row[12],
            resolved_at=row[13],
        )
        for row in rows
    ]


def count_open(conn: psycopg.Connection[Any], *, mapping: str | None = None) -> int:
    """How many dead letters are open (for ``status``), for one mapping or all."""
    stmt = sql.SQL("SELECT count(*) FROM {} WHERE resolved_at IS NULL AND (%(m)s::text IS NULL OR mapping = %(m)s)")
    with conn.cursor() as cur:
        row = cur.execute(stmt.format(TABLE), {"m": mapping}).fetchone()
    return int(row[0]) if row else 0


def resolve(conn: psycopg.Connection[Any], ids: Sequence[int]) -> int:
    """Mark dead letters as resolved (their change was replayed and applied); returns how many were open."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET resolved_at = now() WHERE id = ANY(%s) AND resolved_at IS NULL").format(TABLE),
            (list(ids),),
        )
        return cur.rowcount


def discard(conn: psycopg.Connection[Any], ids: Sequence[int]) -> int:
    """Delete dead letters for good (the operator decided their changes are not wanted); returns how many."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(TABLE), (list(ids),))
        return cur.rowcount
