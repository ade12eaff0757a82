"""Apply one batch of decoded changes for one mapping, set-based, inside the caller's transaction.

A batch costs a fixed number of statements whatever its size: collapse in memory, then COPY upserts into a
temporary staging table and merge them with one ``INSERT … ON CONFLICT``, COPY delete keys and remove them with one
``DELETE … USING`` (plus one ``UPDATE`` for soft deletes and one tombstone ``INSERT``), replace children with one
DELETE, one COPY and one INSERT per child table, and write dead letters with one COPY. Nothing here commits: the
runner commits the batch together with its checkpoint, so a crash at any instant loses or repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg import pq

from ddbrepl.mapping.model import SEQ_COLUMN, Mapping
from ddbrepl.records import ApplyStats, Delete, Op, Origin, Rejected, Upsert
from ddbrepl.sink import statements as st
from ddbrepl.state import deadletters

log = logging.getLogger(__name__)

UPSERTS = "_ddbrepl_upserts"
DELETES = "_ddbrepl_deletes"
APPLIED = "_ddbrepl_applied"
CHILD_STAGING = "_ddbrepl_child_{}"

GUARDS: dict[str, st.Guard] = {
    "stream": "none",
    "lambda": "none",
    "repair": "none",
    "scan": "backfill",
    "export": "backfill",
    "replay": "replay",
}
"""Which guard each origin's changes pass through (see sink.statements)."""


@dataclass(frozen=True, slots=True)
class Collapsed:
    """A batch reduced to its final state: at most one upsert or delete per primary key, plus every rejection."""

    upserts: list[Upsert]
    deletes: list[Delete]
    rejected: list[Rejected]


def collapse(ops: Iterable[Op]) -> Collapsed:
    """Keep the last upsert or delete per primary key; keep every rejected change.

    ``ops`` arrive in stream order for one shard (or in any order for a backfill, whose keys are unique), so the
    last op per key is the key's final state. A rejected change does not displace an earlier op for its key: that
    op still applies, and a replay of the dead letter later brings the row forward.
    """
    last: dict[tuple[Any, ...], Upsert | Delete] = {}
    rejected: list[Rejected] = []
    for op in ops:
        if isinstance(op, Rejected):
            rejected.append(op)
        else:
            last[op.key] = op
    upserts: list[Upsert] = []
    deletes: list[Delete] = []
    for op in last.values():
        if isinstance(op, Upsert):
            upserts.append(op)
        else:
            deletes.append(op)
    return Collapsed(upserts, deletes, rejected)


def apply(
    conn: psycopg.Connection[Any], mapping: Mapping, ops: Sequence[Op], *, origin: Origin
) -> ApplyStats:
    """Apply ``ops`` to the mapping's target table in the caller's open transaction; never commits.

    Upserts set ``_ddb_seq`` to the op's sequence (NULL for backfill rows) and ``_ddb_synced_at`` to the
    transaction time, and clear ``deleted_at``. ``origin`` chooses the guard (GUARDS). Any error propagates with
    the transaction left for the caller to roll back, so a batch applies entirely or not at all.
    Returns counts: upserts applied, rows deleted (or soft-deleted), upserts refused by a guard, rejected
    changes written as dead letters, child rows written.
    """
    if conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
        raise psycopg.ProgrammingError("sink.apply needs an open transaction (use conn.transaction())")
    batch = collapse(ops)
    guard = GUARDS[origin]
    params = {"target_table": str(mapping.target), "source_table": mapping.source_table}
    upserted = skipped = deleted = children = 0
    with conn.cursor() as cur:
        if batch.upserts:
            upserted, children = _upsert(cur, mapping, batch.upserts, guard, params)
            skipped = len(batch.upserts) - upserted
        if batch.deletes:
            deleted = _delete(cur, mapping, batch.deletes, guard, params)
    if batch.rejected:
        deadletters.record(
            conn,
            batch.rejected,
            source_table=mapping.source_table,
            target_table=str(mapping.target),
            origin=origin,
        )
    stats = ApplyStats(upserted, deleted, skipped, len(batch.rejected), children)
    log.debug(
        "applied %d upserts (%d skipped), %d deletes, %d children, %d rejected to %s",
        stats.upserts, stats.skipped, stats.deletes, stats.children, stats.rejected, mapping.target,
    )
    return stats


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_default(value: Any) -> Any:
    """Exact JSON for what orjson does not know: Decimal as a number, sets as sorted arrays, bytes as base64."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot write a {type(value).__name__} to a json column")


def _json_indexes(columns: Sequence[Any]) -> list[int]:
    return [i for i, c in enumerate(columns) if c.sql_type.is_json]


def _prepare(values: tuple[Any, ...], json_at: Sequence[int]) -> list[Any]:
    """Render json/jsonb values: a str is taken as JSON text already rendered; anything else is serialised."""
    row = list(values)
    for i in json_at:
        v = row[i]
        if v is not None and type(v) is not str:
            row[i] = _json_dumps(v)
    return row


def _upsert(
    cur: psycopg.Cursor[Any],
    mapping: Mapping,
    upserts: list[Upsert],
    guard: st.Guard,
    params: dict[str, str],
) -> tuple[int, int]:
    """Stage, merge and replace children; returns (rows applied, child rows written)."""
    target = st.table(mapping.target)
    columns = [c.name for c in mapping.columns]
    keys = [c.name for c in mapping.key_columns]
    staged = [*columns, SEQ_COLUMN]
    soft = mapping.delete == "soft" or mapping.ttl_delete == "soft"
    cur.execute(st.create_staging(UPSERTS, target, staged))
    json_at = _json_indexes(mapping.columns)
    with cur.copy(st.copy(UPSERTS, staged)) as copy:
        write = copy.write_row
        if json_at:
            for op in upserts:
                write([*_prepare(op.values, json_at), op.sequence])
        else:
            for op in upserts:
                write((*op.values, op.sequence))
    temps = [UPSERTS]
    applied_into = APPLIED if mapping.children else None
    if applied_into:
        cur.execute(st.create_keys_table(APPLIED, target, keys))
        temps.append(APPLIED)
    cur.execute(
        st.merge(target, UPSERTS, columns, keys, guard=guard, soft=soft, applied_into=applied_into),
        params if guard != "none" else None,
    )
    applied = cur.rowcount
    children = _replace_children(cur, mapping, upserts, keys, temps) if mapping.children else 0
    cur.execute(st.drop(temps))
    return applied, children


def _replace_children(
    cur: psycopg.Cursor[Any], mapping: Mapping, upserts: list[Upsert], keys: list[str], temps: list[str]
) -> int:
    """Replace the children of every parent listed in APPLIED; one DELETE, one COPY, one INSERT per child table."""
    key_at = mapping.key_indexes
    written = 0
    for index, child in enumerate(mapping.children):
        child_table = st.table(child.target)
        columns = [*keys, *(c.name for c in child.columns)]
        staging = CHILD_STAGING.format(index)
        cur.execute(st.delete_children(child_table, APPLIED, keys))
        cur.execute(st.create_staging(staging, child_table, columns))
        temps.append(staging)
        json_at = [len(keys) + i for i in _json_indexes(child.columns)]
        with cur.copy(st.copy(staging, columns)) as copy:
            for op in upserts:
                parent = tuple(op.values[i] for i in key_at)
                for rows in op.children:
                    if rows.child != index:
                        continue
                    for row in rows.rows:
                        full = (*parent, *row)
                        copy.write_row(_prepare(full, json_at) if json_at else full)
        cur.execute(st.insert_children(child_table, staging, APPLIED, columns, keys))
        written += cur.rowcount
    return written


def _delete(
    cur: psycopg.Cursor[Any],
    mapping: Mapping,
    deletes: list[Delete],
    guard: st.Guard,
    params: dict[str, str],
) -> int:
    """Stage the keys, write tombstones (only while a backfill runs), then delete hard and soft; rows affected."""
    target = st.table(mapping.target)
    keys = [c.name for c in mapping.key_columns]
    staged = [*keys, SEQ_COLUMN]
    cur.execute(st.create_staging(DELETES, target, staged, soft_flag=True))
    with cur.copy(st.copy(DELETES, [*staged, st.SOFT_FLAG])) as copy:
        for op in deletes:
            copy.write_row((*op.key, op.sequence, op.soft))
    cur.execute(st.write_tombstones(DELETES, keys, guard=guard), params)
    affected = 0
    if any(not op.soft for op in deletes):
        cur.execute(st.delete_hard(target, DELETES, keys, guard=guard))
        affected += cur.rowcount
    if any(op.soft for op in deletes):
        cur.execute(st.delete_soft(target, DELETES, keys, guard=guard))
        affected += cur.rowcount
    cur.execute(st.drop([DELETES]))
    return affected
