"""Small types passed between stages, so that no stage imports another.

Images and keys stay in DynamoDB JSON (``{"attr": {"S": "x"}}``) until the codec decodes them: sources do not
decode, and the dead-letter table keeps exactly what was read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
AttrMap = Mapping[str, Any]
"""An item, image or key set in DynamoDB JSON: attribute name -> ``{"<type tag>": value}``."""

Origin = Literal["scan", "export", "stream", "lambda", "replay", "repair"]


@dataclass(frozen=True, slots=True)
class RawChange:
    """One change as a source read it.

    A backfilled item is an INSERT with ``sequence`` None. ``sequence`` is the stream sequence number as an
    integer: numbers compare as integers, and only within one shard (see DESIGN §4).
    """

    event: EventName
    keys: AttrMap
    new_image: AttrMap | None = None
    old_image: AttrMap | None = None
    sequence: int | None = None
    approx_time: datetime | None = None
    ttl_delete: bool = False
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChildRows:
    """The complete set of child rows of one parent for one child table (replaces what was there)."""

    child: int
    """Index of the child definition in ``Mapping.children``."""
    rows: tuple[tuple[Any, ...], ...]
    """Values in ``Child.columns`` order, parent key columns excluded (the sink prepends them)."""


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert or replace one row; ``values`` follow ``Mapping.columns`` order, ready for COPY."""

    key: tuple[Any, ...]
    values: tuple[Any, ...]
    sequence: int | None
    children: tuple[ChildRows, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete (or soft-delete) the row with this primary key."""

    key: tuple[Any, ...]
    sequence: int | None
    soft: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change the codec could not convert; the sink writes it to ``ddbrepl.dead_letters``."""

    mapping: str
    reason: str
    change: RawChange
    column: str | None = None
    path: str | None = None
    value_excerpt: str | None = None


Op = Upsert | Delete | Rejected


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What one sink.apply call did."""

    upserts: int = 0
    deletes: int = 0
    skipped: int = 0
    """Rows a guard refused: backfill rows under stream-written rows, tombstoned keys."""
    rejected: int = 0
    children: int = 0

    def __add__(self, other: ApplyStats) -> ApplyStats:
        return ApplyStats(
            self.upserts + other.upserts,
            self.deletes + other.deletes,
            self.skipped + other.skipped,
            self.rejected + other.rejected,
            self.children + other.children,
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a scan segment; ``resume_from`` is its LastEvaluatedKey (None: segment finished)."""

    segment: int
    items: Sequence[AttrMap]
    resume_from: AttrMap | None


@dataclass(frozen=True, slots=True)
class Shard:
    """A stream shard as DescribeStream lists it."""

    id: str
    parent_id: str | None
    starting_sequence: int
    ending_sequence: int | None = None
    """Set only when the shard is closed."""

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """One GetRecords result for one shard."""

    shard_id: str
    changes: Sequence[RawChange]
    next_iterator: str | None
    """None: the shard is closed and fully read."""
    millis_behind: int | None = None
