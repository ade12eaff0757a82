"""Target-table DDL from the mappings: SQLAlchemy MetaData, reflection diff, SQL rendered offline.

SQLAlchemy lives only here. Its PostgreSQL dialect renders CREATE TABLE and quotes every identifier; statements
are returned as text so that the runner can print them (``--dry-run``) or execute them in one transaction
together with the control-schema migrations.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateSchema, CreateTable

from ddbrepl.mapping.model import (
    DELETED_COLUMN,
    SEQ_COLUMN,
    SYNCED_COLUMN,
    Column,
    Mapping,
    SqlType,
    TableRef,
)

DIALECT: Any = pg.dialect()  # type: ignore[no-untyped-call]
_SCALARS: dict[str, Any] = {
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "real": pg.REAL,
    "double precision": pg.DOUBLE_PRECISION,
    "boolean": sa.Boolean,
    "text": sa.Text,
    "date": sa.Date,
    "timestamp": lambda: sa.TIMESTAMP(timezone=False),
    "timestamptz": lambda: sa.TIMESTAMP(timezone=True),
    "uuid": pg.UUID,
    "json": pg.JSON,
    "jsonb": pg.JSONB,
    "bytea": pg.BYTEA,
    "inet": pg.INET,
}


def sa_type(t: SqlType) -> Any:
    """The SQLAlchemy type for a mapping type."""
    if t.base == "varchar":
        base: Any = sa.String(t.length)
    elif t.base == "numeric":
        base = sa.Numeric(t.precision, t.scale) if t.precision is not None else sa.Numeric()
    else:
        base = _SCALARS[t.base]()
    return pg.ARRAY(base) if t.array else base


def _column(c: Column, *, primary_key: bool | None = None) -> sa.Column[Any]:
    pk = c.primary_key if primary_key is None else primary_key
    return sa.Column(c.name, sa_type(c.sql_type), primary_key=pk, nullable=not pk and c.nullable,
                     autoincrement=False)


def _bookkeeping(m: Mapping) -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [
        sa.Column(SEQ_COLUMN, sa.Numeric(40, 0), comment="stream sequence of the last applied change; NULL: backfill"),
        sa.Column(SYNCED_COLUMN, sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
    ]
    if "soft" in (m.delete, m.ttl_delete):
        cols.append(sa.Column(DELETED_COLUMN, sa.TIMESTAMP(timezone=True)))
    return cols


def _indexes(table: sa.Table, indexes: Sequence[Sequence[str]]) -> None:
    for cols in indexes:
        name = "_".join([table.name, *cols, "idx"])
        if len(name.encode()) > 63:
            name = f"{table.name[:40]}_{zlib.crc32('|'.join(cols).encode()):08x}_idx"
        sa.Index(name, *[table.c[c] for c in cols])


def metadata(mappings: Sequence[Mapping]) -> sa.MetaData:
    """One MetaData holding every target and child table of ``mappings``."""
    md = sa.MetaData()
    for m in mappings:
        parent = sa.Table(m.target.table, md, *[_column(c) for c in m.columns], *_bookkeeping(m),
                          schema=m.target.schema)
        _indexes(parent, m.indexes)
        keys = m.key_columns
        for child in m.children:
            parent_cols = [_column(k, primary_key=True) for k in keys]
            table = sa.Table(
                child.target.table, md, *parent_cols, *[_column(c) for c in child.columns],
                sa.ForeignKeyConstraint([k.name for k in keys], [parent.c[k.name] for k in keys], ondelete="CASCADE"),
                schema=child.target.schema,
            )
            _indexes(table, child.indexes)
    return md


def _ref(t: sa.Table) -> TableRef:
    return TableRef(t.schema or "public", t.name)


def _render_type(t: Any) -> str:
    return str(t.compile(dialect=DIALECT))


@dataclass(frozen=True, slots=True)
class Plan:
    """What init-schema will do: statements to run, and destructive changes that need consent."""

    statements: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    """Human-readable destructive changes (type change, dropped column, new primary key)."""
    destructive: tuple[str, ...] = ()
    """The statements that would perform ``refused`` with ``--allow-destructive``."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.statements and not self.refused


def _create(md: sa.MetaData, tables: Sequence[sa.Table], schemas: set[str]) -> list[str]:
    out = [str(CreateSchema(s, if_not_exists=True).compile(dialect=DIALECT)).strip() for s in sorted(schemas)]
    ordered = [t for t in md.sorted_tables if t in tables]
    for t in ordered:
        out.append(str(CreateTable(t).compile(dialect=DIALECT)).strip())
        out += [_create_index(i) for i in sorted(t.indexes, key=lambda i: str(i.name))]
    return out


def _create_index(index: sa.Index) -> str:
    return str(CreateIndex(index, if_not_exists=True).compile(dialect=DIALECT)).strip()


NOT_ENFORCED_SINCE = (18,)
"""PostgreSQL accepts NOT ENFORCED foreign keys from version 18 on."""


def _foreign_keys(mappings: Sequence[Mapping]) -> list[tuple[str, str, str]]:
    """(table name, constraint name, ALTER TABLE statement) for every ``references:``.

    The constraints are informational: NOT ENFORCED, so that BI tools see the relationship while replication,
    which applies each DynamoDB item's changes in its own order, can never be blocked by an order row that arrives
    before its user row (or a user deleted before its orders)."""
    prep = DIALECT.identifier_preparer
    out = []
    for m in mappings:
        for c in m.columns:
            if c.references is None:
                continue
            ref = c.references
            name = f"{m.target.table}_{c.name}_fkey"
            if len(name.encode()) > 63:
                name = f"{m.target.table[:40]}_{zlib.crc32(c.name.encode()):08x}_fkey"
            table = f"{prep.quote_schema(m.target.schema)}.{prep.quote(m.target.table)}"
            stmt = (f"ALTER TABLE {table} ADD CONSTRAINT {prep.quote(name)} FOREIGN KEY ({prep.quote(c.name)}) "
                    f"REFERENCES {prep.quote_schema(ref.schema)}.{prep.quote(ref.table)} ({prep.quote(ref.column)}) "
                    "NOT ENFORCED")
            out.append((m.target.table, name, stmt))
    return out


def plan_offline(mappings: Sequence[Mapping]) -> Plan:
    """Everything created from nothing: what ``--dry-run`` prints without a database."""
    md = metadata(mappings)
    schemas = {t.schema for t in md.sorted_tables if t.schema and t.schema != "public"}
    fks = [stmt for _, _, stmt in _foreign_keys(mappings)]
    return Plan(tuple(_create(md, list(md.sorted_tables), schemas) + fks))


def _engine(url: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=sa.NullPool)


def plan_live(mappings: Sequence[Mapping], url: str) -> Plan:
    """Diff the mappings against the live database by reflection."""
    md = metadata(mappings)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            existing_schemas = set(insp.get_schema_names())
            missing: list[sa.Table] = []
            add: list[str] = []
            refused: list[str] = []
            destructive: list[str] = []
            notes: list[str] = []
            prep = DIALECT.identifier_preparer
            for table in md.sorted_tables:
                schema = table.schema or "public"
                if schema not in existing_schemas or not insp.has_table(table.name, schema=schema):
                    missing.append(table)
                    continue
                live = {c["name"]: c for c in insp.get_columns(table.name, schema=schema)}
                qualified = prep.format_table(table)
                for col in table.columns:
                    if col.name not in live:
                        sql = str(CreateColumn(col).compile(dialect=DIALECT)).strip()
                        if not col.nullable and col.server_default is None:
                            sql = sql.replace(" NOT NULL", "")
                            notes.append(f"{_ref(table)}.{col.name} is added as nullable: existing rows have no "
                                         "value until the next backfill")
                        add.append(f"ALTER TABLE {qualified} ADD COLUMN {sql}")
                        continue
                    want, have = _render_type(col.type), _render_type(live[col.name]["type"])
                    if want != have:
                        refused.append(f"{_ref(table)}.{col.name}: type {have} -> {want}")
                        quoted = prep.quote(col.name)
                        destructive.append(f"ALTER TABLE {qualified} ALTER COLUMN {quoted} TYPE {want} "
                                           f"USING {quoted}::{want}")
                for name in live:
                    if name not in table.columns:
                        refused.append(f"{_ref(table)}.{name}: column no longer mapped (would be dropped)")
                        destructive.append(f"ALTER TABLE {qualified} DROP COLUMN {prep.quote(name)}")
                live_indexes = {i["name"] for i in insp.get_indexes(table.name, schema=schema)}
                add += [_create_index(i) for i in sorted(table.indexes, key=lambda i: str(i.name))
                        if i.name not in live_indexes]
                pk = insp.get_pk_constraint(table.name, schema=schema)
                want_pk = [c.name for c in table.primary_key.columns]
                if list(pk.get("constrained_columns") or []) != want_pk:
                    refused.append(f"{_ref(table)}: primary key ({', '.join(pk.get('constrained_columns') or [])}) "
                                   f"-> ({', '.join(want_pk)})")
                    pk_name = pk.get("name")
                    if pk_name:
                        destructive.append(f"ALTER TABLE {qualified} DROP CONSTRAINT {prep.quote(pk_name)}")
                    destructive.append(f"ALTER TABLE {qualified} ADD PRIMARY KEY ("
                                       + ", ".join(prep.quote(c) for c in want_pk) + ")")
            schemas = {t.schema for t in missing if t.schema and t.schema not in existing_schemas}
            fks = _foreign_keys(mappings)
            if fks and tuple(conn.dialect.server_version_info or ()) < NOT_ENFORCED_SINCE:
                notes.append("informational foreign keys (references:) need PostgreSQL 18 or later; skipped "
                             + ", ".join(name for _, name, _ in fks))
                fks = []
            missing_names = {t.name for t in missing}
            for table_name, name, stmt in fks:
                schema_of = next(t.schema or "public" for t in md.sorted_tables if t.name == table_name)
                live_fks = set() if table_name in missing_names else {
                    fk["name"] for fk in insp.get_foreign_keys(table_name, schema=schema_of)}
                if name not in live_fks:
                    add.append(stmt)
            statements = _create(md, missing, schemas) + add
            return Plan(tuple(statements), tuple(refused), tuple(destructive), tuple(notes))
    finally:
        engine.dispose()


def render(statements: Sequence[str]) -> str:
    """Statements as one SQL script."""
    return "".join(s.rstrip().rstrip(";") + ";\n\n" for s in statements)
