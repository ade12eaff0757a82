"""The typed, immutable mapping model. Built only by `mapping.check`; nothing downstream sees a raw dict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

INTEGER_TYPES = {"smallint": 16, "integer": 32, "bigint": 64}
BASE_TYPES = (
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
    "boolean",
    "text",
    "varchar",
    "date",
    "timestamp",
    "timestamptz",
    "uuid",
    "json",
    "jsonb",
    "bytea",
    "inet",
)


@dataclass(frozen=True, slots=True)
class SqlType:
    """A parsed PostgreSQL column type: ``numeric(10,2)`` -> SqlType("numeric", precision=10, scale=2)."""

    base: str
    length: int | None = None
    """varchar(n): maximum length in characters."""
    precision: int | None = None
    scale: int | None = None
    array: bool = False

    def render(self) -> str:
        """The type as PostgreSQL spells it, e.g. ``varchar(20)``, ``numeric(10,2)``, ``text[]``."""
        text = self.base
        if self.length is not None:
            text += f"({self.length})"
        elif self.precision is not None:
            text += f"({self.precision},{self.scale or 0})"
        return text + ("[]" if self.array else "")

    @property
    def element(self) -> SqlType:
        """The element type of an array type (itself otherwise)."""
        return SqlType(self.base, self.length, self.precision, self.scale, array=False)

    @property
    def is_integer(self) -> bool:
        return self.base in INTEGER_TYPES and not self.array

    @property
    def is_numeric(self) -> bool:
        return self.base in (*INTEGER_TYPES, "numeric", "real", "double precision") and not self.array

    @property
    def is_text(self) -> bool:
        return self.base in ("text", "varchar") and not self.array

    @property
    def is_json(self) -> bool:
        return self.base in ("json", "jsonb") and not self.array

    @property
    def is_temporal(self) -> bool:
        return self.base in ("date", "timestamp", "timestamptz") and not self.array


PathRoot = Literal["attr", "item", "event", "element"]
EVENT_FIELDS = ("name", "time", "sequence")
ELEMENT_FIELDS = ("index", "key", "value")


@dataclass(frozen=True, slots=True)
class AttrPath:
    """A parsed ``from:``.

    root "attr": ``steps`` walk the item from a top-level attribute (``address.city``, ``items[0].sku``).
    root "item": the whole item (``$item``). root "event": ``steps == (field,)`` for ``$event.name|time|sequence``.
    root "element": inside a child, ``$index``, ``$key`` or ``$value`` then optional steps (``$value.sku``).
    """

    root: PathRoot
    steps: tuple[str | int, ...]
    text: str

    @property
    def top(self) -> str | None:
        """The top-level attribute name this path reads, if it reads one."""
        if self.root == "attr" and self.steps and isinstance(self.steps[0], str):
            return self.steps[0]
        return None


TransformKind = Literal["strip_prefix", "regex", "epoch", "map", "lower", "upper", "trim", "parse"]


@dataclass(frozen=True, slots=True)
class Transform:
    """One step of a column's ``transform:`` list, applied in order to the decoded value.

    arg by kind: strip_prefix -> str; regex -> str (the pattern; the first group is kept); epoch -> "seconds" |
    "millis"; map -> tuple of (from, to) pairs; parse -> "number" | "boolean"; lower/upper/trim -> None.
    """

    kind: TransformKind
    arg: Any = None


ConditionOp = Literal["equals", "not_equals", "begins_with", "exists", "in"]


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``where:`` condition; ``value`` is a str/Decimal/bool for equals and begins_with, a tuple for in,
    a bool for exists (True: must exist, False: must be absent)."""

    path: AttrPath
    op: ConditionOp
    value: Any


@dataclass(frozen=True, slots=True)
class Filter:
    """Which changes a mapping takes: events in ``events`` whose image satisfies every condition."""

    events: frozenset[str]
    where: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Column:
    """A target column: name is a PostgreSQL identifier, already checked (≤ 63 bytes, no case-fold clash)."""

    name: str
    source: AttrPath
    sql_type: SqlType
    primary_key: bool = False
    nullable: bool = True
    default: Any = None
    """Used when the attribute is absent or NULL (a YAML scalar, converted like an attribute value)."""
    on_overflow: Literal["error", "truncate"] = "error"
    transforms: tuple[Transform, ...] = ()
    references: ColumnRef | None = None
    """An informational foreign key (see ddl): the referenced table's single-column primary key."""


@dataclass(frozen=True, slots=True)
class ColumnRef:
    schema: str
    table: str
    column: str


@dataclass(frozen=True, slots=True)
class TableRef:
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True)
class Child:
    """A list or map attribute exploded into a child table.

    The child table's primary key is the parent's key columns (same names and types, prepended by the sink and
    the DDL) followed by this child's own primary-key columns (usually the one reading ``$index`` or ``$key``).
    """

    target: TableRef
    source: AttrPath
    columns: tuple[Column, ...]
    only_keys: frozenset[str] | None = None
    """For a map: explode only these keys (e.g. identifiers that may link profiles, not names)."""
    indexes: tuple[tuple[str, ...], ...] = ()
    """Secondary indexes (column-name lists) on the child table."""


@dataclass(frozen=True, slots=True)
class Mapping:
    """One mapping file: one DynamoDB table (or one entity of it) into one PostgreSQL table."""

    name: str
    path: Path
    source_table: str
    source_key: tuple[str, ...]
    target: TableRef
    columns: tuple[Column, ...]
    filter: Filter | None = None
    delete: Literal["hard", "soft"] = "hard"
    ttl_delete: Literal["hard", "soft", "ignore"] = "hard"
    children: tuple[Child, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    """Secondary indexes (column-name lists) on the target table."""

    @property
    def key_columns(self) -> tuple[Column, ...]:
        """Primary-key columns in ``source.key`` order (partition key first)."""
        pk = [c for c in self.columns if c.primary_key]
        order = {attr: i for i, attr in enumerate(self.source_key)}
        return tuple(sorted(pk, key=lambda c: order.get(c.source.top or "", len(order))))

    @property
    def key_indexes(self) -> tuple[int, ...]:
        """Positions of the key columns within ``columns`` (the order of ``Upsert.key``)."""
        return tuple(self.columns.index(c) for c in self.key_columns)


SEQ_COLUMN = "_ddb_seq"
"""Stream sequence number of the last applied change; NULL when the row came from a backfill."""
SYNCED_COLUMN = "_ddb_synced_at"
DELETED_COLUMN = "deleted_at"
"""Added to the target table when ``delete: soft`` or ``ttl_delete: soft``."""
