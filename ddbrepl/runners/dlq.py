"""`ddbrepl dlq list | replay | discard`: look at, retry and drop the changes the codec could not convert.

A replay converts each open dead letter's raw change again with the *current* mappings (after a mapping edit and
`init-schema`, e.g. a wider varchar) and applies what converts through the sink with origin "replay", whose guard
never lets a replayed change overwrite a row a newer stream change wrote, nor recreate a key deleted later. Dead
letters whose change now applies (or is skipped as superseded, or is filtered out by the mapping) are resolved;
those still refused stay open with ``attempts`` + 1 and the new reason. Work goes a page at a time, one
transaction per page, so memory stays bounded and an interrupted replay keeps what it finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ddbrepl.codec.rows import Converter
from ddbrepl.errors import ConfigError
from ddbrepl.records import Op, Rejected
from ddbrepl.runners.common import open_state, table_plans
from ddbrepl.settings import Settings
from ddbrepl.sink.apply import apply
from ddbrepl.state import deadletters
from ddbrepl.state.deadletters import DeadLetter

log = logging.getLogger(__name__)
PAGE = 500


def _pages(conn: psycopg.Connection[Any], table: str | None, ids: Sequence[int]) -> Iterator[list[DeadLetter]]:
    """Open dead letters of ``table`` (all tables when None) in id order, ``PAGE`` at a time, only ``ids`` if given."""
    wanted = set(ids)
    after = 0
    while True:
        page = deadletters.list_open(conn, source_table=table, after_id=after, limit=PAGE)
        if not page:
            return
        after = page[-1].id
        chosen = [d for d in page if not wanted or d.id in wanted]
        if chosen:
            yield chosen


def _letter_json(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id, "table": d.source_table, "mapping": d.mapping, "target": d.target_table, "origin": d.origin,
        "event": d.change.event, "keys": json.loads(deadletters.to_json(d.change.keys)),
        "sequence": None if d.change.sequence is None else str(d.change.sequence),
        "reason": d.reason, "column": d.column, "path": d.path, "value_excerpt": d.value_excerpt,
        "first_seen": d.first_seen.isoformat(), "last_seen": d.last_seen.isoformat(), "attempts": d.attempts,
    }


@dataclass(frozen=True, slots=True)
class Listing:
    letters: tuple[DeadLetter, ...]

    def render(self) -> str:
        if not self.letters:
            return "no open dead letters"
        lines = [f"{len(self.letters)} open dead letter(s)"]
        for d in self.letters:
            keys = deadletters.to_json(d.change.keys)
            lines.append(f"  #{d.id} {d.source_table} -> {d.target_table} [{d.mapping}] {d.change.event} {keys}: "
                         f"{d.reason} (origin {d.origin}, {d.attempts} attempt(s), "
                         f"first {d.first_seen:%Y-%m-%d %H:%M:%S})")
        return "\n".join(lines)

    def to_json(self) -> list[dict[str, Any]]:
        return [_letter_json(d) for d in self.letters]


def list_letters(settings: Settings, *, table: str | None = None) -> Listing:
    """Every open dead letter (of one DynamoDB table when given), oldest first."""
    with open_state(settings) as conn:
        return Listing(tuple(d for page in _pages(conn, table, ()) for d in page))


@dataclass
class ReplayResult:
    """Counts of a replay; ``failing`` lists (id, new reason) of dead letters still open."""

    resolved: int = 0
    applied: int = 0
    superseded: int = 0
    filtered: int = 0
    failing: list[tuple[int, str]] = field(default_factory=list)
    unknown_mapping: list[tuple[int, str]] = field(default_factory=list)
    missing_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failing and not self.unknown_mapping and not self.missing_ids

    def render(self) -> str:
        lines = [f"replayed: {self.resolved} resolved ({self.applied} applied, {self.superseded} superseded by "
                 f"newer rows, {self.filtered} no longer taken by their mapping), {len(self.failing)} still failing"]
        lines += [f"  #{i} still failing: {reason}" for i, reason in self.failing]
        lines += [f"  #{i}: mapping {name!r} no longer exists; edit the mappings or discard it"
                  for i, name in self.unknown_mapping]
        if self.missing_ids:
            lines.append(f"  not open dead letters: {', '.join(map(str, self.missing_ids))}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"resolved": self.resolved, "applied": self.applied, "superseded": self.superseded,
                "filtered": self.filtered, "failing": [{"id": i, "reason": r} for i, r in self.failing],
                "unknown_mapping": [{"id": i, "mapping": m} for i, m in self.unknown_mapping],
                "missing_ids": self.missing_ids}


def _replay_page(conn: psycopg.Connection[Any], converters: dict[str, Converter], page: list[DeadLetter],
                 result: ReplayResult) -> None:
    by_mapping: dict[str, list[DeadLetter]] = {}
    for d in page:
        by_mapping.setdefault(d.mapping, []).append(d)
    with conn.transaction():
        resolved: list[int] = []
        for name, letters in by_mapping.items():
            conv = converters.get(name)
            if conv is None:
                result.unknown_mapping += [(d.id, name) for d in letters]
                continue
            ops: list[Op] = []
            for d in letters:
                op = conv(d.change)
                if op is None:
                    result.filtered += 1
                    resolved.append(d.id)
                elif isinstance(op, Rejected):
                    result.failing.append((d.id, op.reason))
                    ops.append(op)
                else:
                    resolved.append(d.id)
                    ops.append(op)
            if ops:
                # Rejected ops go back through deadletters.record: the open letter gets attempts+1, new reason.
                stats = apply(conn, conv.mapping, ops, origin="replay")
                result.applied += stats.upserts + stats.deletes
                result.superseded += stats.skipped
        result.resolved += deadletters.resolve(conn, resolved)


def replay(settings: Settings, *, ids: Sequence[int] = (), table: str | None = None) -> ReplayResult:
    """Convert open dead letters again with the current mappings and apply what converts (origin "replay")."""
    if not ids and table is None:
        raise ConfigError("name the dead letters to replay", "pass --id N (repeatable) or --table T")
    converters = {c.mapping.name: c for plan in table_plans(settings) for c in plan.converters}
    result = ReplayResult()
    seen: set[int] = set()
    with open_state(settings) as conn:
        for page in _pages(conn, table, ids):
            seen.update(d.id for d in page)
            _replay_page(conn, converters, page, result)
    result.missing_ids = sorted(set(ids) - seen)
    log.info("dead-letter replay: %d resolved, %d still failing", result.resolved, len(result.failing))
    return result


def discard(settings: Settings, *, ids: Sequence[int] = (), table: str | None = None) -> int:
    """Delete open dead letters for good (their changes are not wanted); returns how many."""
    if not ids and table is None:
        raise ConfigError("name the dead letters to discard", "pass --id N (repeatable) or --table T")
    total = 0
    with open_state(settings) as conn:
        for page in _pages(conn, table, ids):
            with conn.transaction():
                total += deadletters.discard(conn, [d.id for d in page])
    return total
