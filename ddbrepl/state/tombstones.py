"""Tombstones: keys deleted by the stream while a backfill of their table runs.

A scan is not a snapshot: it may read an item after the stream already deleted it. The sink therefore records a
tombstone (target table, key as a JSON array in key-column order, sequence) for every delete it applies while a
row of ``ddbrepl.backfills`` for the source table has ``finished_at`` NULL, and refuses backfill rows for
tombstoned keys. Once the backfill is finished the tombstones have no purpose: `clear` removes them, in the same
transaction that marks the backfill finished. The sink writes them itself, set-based (sink.statements).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

TABLE = sql.Identifier("ddbrepl", "tombstones")


def backfill_running(conn: psycopg.Connection[Any], source_table: str) -> bool:
    """True while a backfill of the DynamoDB table ``source_table`` is recorded and not finished."""
    with conn.cursor() as cur:
        row = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM ddbrepl.backfills WHERE source_table = %s AND finished_at IS NULL)",
            (source_table,),
        ).fetchone()
    return bool(row and row[0])


def clear(conn: psycopg.Connection[Any], target_tables: Sequence[str]) -> int:
    """Remove every tombstone of the given target tables ("schema.table"); returns how many were removed."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE target_table = ANY(%s)").format(TABLE), (list(target_tables),))
        return cur.rowcount


def count(conn: psycopg.Connection[Any], target_table: str) -> int:
    """How many keys of ``target_table`` are tombstoned (for ``status``)."""
    with conn.cursor() as cur:
        row = cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE target_table = %s").format(TABLE), (target_table,)
        ).fetchone()
    return int(row[0]) if row else 0
