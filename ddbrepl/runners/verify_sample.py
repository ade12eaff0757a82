"""`verify --sample N`, the other direction: sample rows of PostgreSQL and look for their items in DynamoDB.

A sampled verify scans only part of DynamoDB, so it cannot prove a row *extra* the way a full verify does (a key
no scan yielded). Instead it samples about N rows of each target table (``TABLESAMPLE BERNOULLI``, sized from the
planner's row estimate), turns each row's key back into DynamoDB key attributes, reads those items with
BatchGetItem (strongly consistent) and converts them with the mapping: a row is extra when its item is gone or
no longer converts into that row (filtered out, or converting to another key). ``--repair`` deletes such rows,
with the same in-flux protection as a full verify.

Turning a row back into a key needs, per key attribute, a column that holds it unchanged: read from that
top-level attribute, no transform, a type that keeps the value (S → text/varchar without truncation, N → a
numeric type, B → bytea). Mappings whose keys are transformed (``strip_prefix``, ``epoch``…) are reported as not
sampled, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql

from ddbrepl.mapping.model import DELETED_COLUMN, Column, Mapping
from ddbrepl.records import AttrMap, RawChange, Rejected, Upsert
from ddbrepl.runners.verify_check import Checker
from ddbrepl.sources.items import get_items
from ddbrepl.sources.scan import TableInfo

KeyBuilder = Callable[[Sequence[Any]], AttrMap]
"""Values of the inverting columns (in key-attribute order) → the item's key attributes."""


def _keeps(kind: str, column: Column) -> bool:
    """Whether ``column`` holds a key attribute of DynamoDB type ``kind`` without losing anything."""
    t = column.sql_type
    if kind == "S":
        return t.is_text and (t.length is None or column.on_overflow == "error")
    if kind == "N":
        return t.is_numeric and t.base not in ("real", "double precision")
    return kind == "B" and t.base == "bytea" and not t.array


def inverse_key(mapping: Mapping, info: TableInfo) -> tuple[list[Column], KeyBuilder] | str:
    """The columns that hold the key attributes unchanged and how to rebuild the key, or why there are none."""
    attrs = [info.partition_key, *([info.sort_key] if info.sort_key else [])]
    columns: list[Column] = []
    for attr in attrs:
        found = [c for c in mapping.columns if c.source.root == "attr" and c.source.steps == (attr.name,)
                 and not c.transforms and _keeps(attr.type, c)]
        if not found:
            return (f"no column holds key attribute {attr.name!r} unchanged (read as is, no transform, "
                    f"a type that keeps a {attr.type} value)")
        columns.append(found[0])

    def build(values: Sequence[Any]) -> AttrMap:
        key: dict[str, Any] = {}
        for attr, value in zip(attrs, values, strict=True):
            # N comes back as an int or a Decimal: either prints as DynamoDB reads it; B as bytes or memoryview.
            kind = attr.type
            key[attr.name] = {kind: str(value) if kind == "N" else bytes(value) if kind == "B" else value}
        return key

    return columns, build


def sample_rows(checker: Checker, columns: list[Column], wanted: int
                ) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """About ``wanted`` random live rows of the target: (primary key, values of the inverting ``columns``)."""
    m = checker.conv.mapping
    target = sql.Identifier(m.target.schema, m.target.table)
    conn = checker.conn
    row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (target.as_string(conn),)
                       ).fetchone()
    estimate = float(row[0]) if row else -1.0
    percent = 100.0 if estimate <= 0 else min(100.0, max(0.0001, 300.0 * wanted / estimate))
    live = (sql.SQL(" WHERE {} IS NULL").format(sql.Identifier(DELETED_COLUMN)) if checker.soft else sql.SQL(""))
    query = sql.SQL("SELECT {}, {} FROM {} TABLESAMPLE BERNOULLI (%s){} ORDER BY random() LIMIT %s").format(
        sql.SQL(", ").join(map(sql.Identifier, checker.keys)),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), target, live)
    return [(tuple(r[:len(checker.keys)]), tuple(r[len(checker.keys):]))
            for r in conn.execute(query, (percent, wanted)).fetchall()]


def check_sampled_rows(checker: Checker, client: Any, info: TableInfo, wanted: int) -> None:
    """Sample the target, look its rows up in DynamoDB, and report (or, repairing, delete) the extra ones."""
    report = checker.report
    inverse = inverse_key(checker.conv.mapping, info)
    if isinstance(inverse, str):
        report.extra_unchecked = inverse
        return
    columns, build = inverse
    rows = [(pk, build(values)) for pk, values in sample_rows(checker, columns, wanted)]
    report.extra_sampled = len(rows)
    items = get_items(client, info.name, [attrs for _, attrs in rows], info.key_names)
    held: set[tuple[Any, ...]] = set()  # primary keys the fetched items convert into (or fail to convert with)
    for item in items.values():
        change = RawChange("INSERT", {k: item[k] for k in info.key_names}, item)
        op = checker.conv(change)
        if isinstance(op, Upsert):
            held.add(op.key)
        elif isinstance(op, Rejected):  # a dead letter explains the row; it is not extra
            key = checker.key_only(change)
            if key is not None:
                held.add(key)
    checker.listed_extras([pk for pk, _ in rows if pk not in held])
