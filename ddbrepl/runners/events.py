"""Lambda-style stream events (``{"Records": [...]}``): parse them, convert them, apply them or describe them.

Used by `ddbrepl apply-events FILE.json` (a captured or generated event, checked in CI with ``--dry-run``) and by
the AWS Lambda handler. A Lambda record carries the same ``dynamodb`` object as GetRecords, with N as strings, B as
base64 and ``ApproximateCreationDateTime`` as epoch seconds, so `sources.stream.to_change` converts it; the codec
takes base64 B values. The DynamoDB table is read from ``eventSourceARN`` (``…:table/<name>/stream/<label>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from ddbrepl.errors import ConfigError, SourceError
from ddbrepl.records import ApplyStats, Delete, Origin, RawChange, Rejected, Upsert
from ddbrepl.runners.common import TablePlan, apply_changes, aws_config, open_state, table_plans
from ddbrepl.settings import Settings
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.items import current_items
from ddbrepl.sources.stream import to_change


@dataclass(frozen=True, slots=True)
class TableEvents:
    """The records of one DynamoDB table, in delivery order."""

    table: str
    changes: tuple[RawChange, ...]
    view_type: str | None = None
    """The stream's ``StreamViewType`` as the records state it (KEYS_ONLY records carry no image)."""


def table_of(arn: str) -> str | None:
    """The table name in a stream or table ARN, else None."""
    _, sep, rest = arn.partition(":table/")
    if not sep:
        return None
    return rest.split("/", 1)[0] or None


def parse_records(event: AnyMapping[str, Any], table: str | None = None) -> list[TableEvents]:
    """Group an event's records by DynamoDB table (``table`` overrides every ARN), keeping their order.

    Raises SourceError on a record that is not a DynamoDB stream record or names no table.
    """
    records = event.get("Records")
    if not isinstance(records, list):
        raise SourceError("the event has no \"Records\" list", "pass a Lambda DynamoDB stream event")
    grouped: dict[str, list[RawChange]] = {}
    views: dict[str, str] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict) or "dynamodb" not in record or "eventName" not in record:
            raise SourceError(f"record {i} is not a DynamoDB stream record (no eventName/dynamodb)")
        name = table or table_of(str(record.get("eventSourceARN", "")))
        if name is None:
            raise SourceError(f"record {i}: eventSourceARN {record.get('eventSourceARN')!r} names no table",
                              "pass --table")
        try:
            change = to_change(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise SourceError(f"record {i} is malformed: {type(exc).__name__}: {exc}") from exc
        grouped.setdefault(name, []).append(change)
        view = record["dynamodb"].get("StreamViewType")
        if isinstance(view, str):
            views.setdefault(name, view)
    return [TableEvents(t, tuple(cs), views.get(t)) for t, cs in grouped.items()]


def load_event(path: Path) -> dict[str, Any]:
    """Read an event file; numbers stay exact (Decimal), though stream images carry them as strings anyway."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read event file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} holds a JSON {type(doc).__name__}, not an event object")
    return doc


def match_plans(plans: Sequence[TablePlan], groups: Sequence[TableEvents]) -> list[tuple[TablePlan, TableEvents]]:
    """Pair every group with the mappings of its table; a table no mapping reads is a ConfigError."""
    by_table = {p.source_table: p for p in plans}
    missing = sorted({g.table for g in groups} - by_table.keys())
    if missing:
        raise ConfigError(f"no mapping reads table(s) {', '.join(missing)} named by the event",
                          f"mapped tables: {', '.join(sorted(by_table)) or 'none'}; pass --table to override")
    return [(by_table[g.table], g) for g in groups]


def plain(value: Any) -> Any:
    """A JSON-friendly rendering of a converted value, for people and for ``--output json``."""
    if isinstance(value, Decimal | bytes | bytearray | memoryview):
        return str(value) if isinstance(value, Decimal) else "\\x" + bytes(value).hex()
    if isinstance(value, set | frozenset | list | tuple):
        return [plain(v) for v in (sorted(value, key=repr) if isinstance(value, set | frozenset) else value)]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _shown(values: Sequence[Any], json_at: set[int]) -> list[Any]:
    """Row values for display: json columns (rendered JSON text) as the documents they hold."""
    out = plain(list(values))
    for i in json_at:
        if isinstance(out[i], str):
            out[i] = json.loads(out[i], parse_float=Decimal)
    return [plain(v) for v in out]


@dataclass
class MappingPreview:
    """What one mapping would do with the events: each op in event order (not collapsed)."""

    mapping: str
    target: str
    ops: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"upsert": 0, "delete": 0, "dead_letter": 0}
        for op in self.ops:
            out[op["op"]] += 1
        return out


def preview(plans: Sequence[TablePlan], groups: Sequence[TableEvents]) -> list[MappingPreview]:
    """Convert every record with every mapping of its table, touching no database (``--dry-run``)."""
    out: list[MappingPreview] = []
    for plan, group in match_plans(plans, groups):
        for conv in plan.converters:
            m = conv.mapping
            pv = MappingPreview(m.name, str(m.target))
            keys = [c.name for c in m.key_columns]
            names = [c.name for c in m.columns]
            json_at = {i for i, c in enumerate(m.columns) if c.sql_type.is_json}
            for change in group.changes:
                op = conv(change)
                seq = None if change.sequence is None else str(change.sequence)
                if isinstance(op, Upsert):
                    pv.ops.append({"op": "upsert", "event": change.event, "sequence": seq,
                                   "key": dict(zip(keys, plain(op.key), strict=True)),
                                   "row": dict(zip(names, _shown(op.values, json_at), strict=True))})
                elif isinstance(op, Delete):
                    pv.ops.append({"op": "delete", "event": change.event, "sequence": seq, "soft": op.soft,
                                   "key": dict(zip(keys, plain(op.key), strict=True))})
                elif isinstance(op, Rejected):
                    pv.ops.append({"op": "dead_letter", "event": change.event, "sequence": seq,
                                   "reason": op.reason, "column": op.column, "path": op.path,
                                   "keys": plain(change.keys)})
            out.append(pv)
    return out


def render_preview(previews: Sequence[MappingPreview]) -> str:
    lines: list[str] = []
    for pv in previews:
        c = pv.counts()
        lines.append(f"{pv.mapping} -> {pv.target}: {c['upsert']} upsert(s), {c['delete']} delete(s), "
                     f"{c['dead_letter']} dead letter(s)")
        for op in pv.ops:
            head = f"  {op['op']:<11} {op['event']:<6} seq {op['sequence']}"
            if op["op"] == "upsert":
                lines.append(f"{head} {json.dumps(op['row'], ensure_ascii=False)}")
            elif op["op"] == "delete":
                soft = " (soft)" if op["soft"] else ""
                lines.append(f"{head} key {json.dumps(op['key'], ensure_ascii=False)}{soft}")
            else:
                lines.append(f"{head} {op['reason']} (keys {json.dumps(op['keys'], ensure_ascii=False)})")
    return "\n".join(lines)


def complete_items(dynamodb: Callable[[], Any], pairs: Sequence[tuple[TablePlan, TableEvents]]
                   ) -> list[tuple[TablePlan, TableEvents]]:
    """Records of a KEYS_ONLY or OLD_IMAGE stream, for mappings that read more than the keys: the current items,
    read with BatchGetItem (100 keys a call, strongly consistent) through the client ``dynamodb()`` returns; an
    item gone since becomes a REMOVE. Applying the current state for an older change is harmless: the last change
    of a key carries the same state."""
    out = []
    for plan, group in pairs:
        complete = group
        if plan.needs_items(group.view_type):
            changes = current_items(dynamodb(), group.table, group.changes, plan.mappings[0].source_key)
            complete = replace(group, changes=tuple(changes))
        out.append((plan, complete))
    return out


def apply_groups(conn: psycopg.Connection[Any], pairs: Sequence[tuple[TablePlan, TableEvents]], *,
                 origin: Origin = "lambda") -> dict[str, ApplyStats]:
    """Apply every group inside the caller's transaction; returns stats per DynamoDB table."""
    out: dict[str, ApplyStats] = {}
    for plan, group in pairs:
        out[group.table] = out.get(group.table, ApplyStats()) + apply_changes(conn, plan, group.changes,
                                                                              origin=origin)
    return out


@dataclass(frozen=True, slots=True)
class EventsResult:
    """What `apply-events` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    previews: tuple[MappingPreview, ...] = ()
    stats: tuple[tuple[str, ApplyStats], ...] = ()

    def render(self) -> str:
        if self.dry_run:
            return render_preview(self.previews)
        return "\n".join(
            f"{table}: {s.upserts} upserted, {s.deletes} deleted, {s.skipped} skipped, {s.rejected} dead letter(s)"
            for table, s in self.stats)

    def to_json(self) -> dict[str, Any]:
        if self.dry_run:
            return {"dry_run": True, "mappings": [
                {"mapping": p.mapping, "target": p.target, "counts": p.counts(), "ops": p.ops} for p in self.previews]}
        return {"dry_run": False, "tables": {
            t: {"upserts": s.upserts, "deletes": s.deletes, "skipped": s.skipped, "dead_letters": s.rejected,
                "children": s.children} for t, s in self.stats}}


def apply_events(settings: Settings, path: Path, *, table: str | None = None, dry_run: bool = False) -> EventsResult:
    """Run a Lambda-style event file through the mappings: describe it (``dry_run``) or apply it in one
    transaction, as the Lambda handler would (origin "lambda")."""
    groups = parse_records(load_event(path), table)
    plans = table_plans(settings, tuple(sorted({g.table for g in groups})))
    if dry_run:
        return EventsResult(True, previews=tuple(preview(plans, groups)))
    pairs = complete_items(lambda: dynamodb_client(aws_config(settings)), match_plans(plans, groups))
    with open_state(settings) as conn, conn.transaction():
        stats = apply_groups(conn, pairs)
    return EventsResult(False, stats=tuple(stats.items()))
