"""`ddbrepl status`: where every mapped table stands, read from the control schema alone (no AWS call).

Per DynamoDB table: the backfill (kind, progress, point in time), the stream followed and its last error, every
checkpointed shard (open or finished, last sequence number and time, lag, lease owner), and open dead letters
per mapping with the latest reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ddbrepl.runners.common import open_state, table_plans
from ddbrepl.settings import Settings
from ddbrepl.state import backfills
from ddbrepl.state import status as st

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TableStatus:
    table: str
    mappings: tuple[tuple[str, str], ...]
    """(mapping name, target table)."""
    backfill: backfills.Run | None
    segments: st.SegmentProgress
    stream: st.StreamState | None
    shards: tuple[st.ShardState, ...]
    dead_letters: dict[str, st.DeadLetterSummary]

    @property
    def open_shards(self) -> list[st.ShardState]:
        return [s for s in self.shards if not s.finished]

    @property
    def lag_seconds(self) -> float | None:
        lags = [s.lag_seconds for s in self.open_shards if s.lag_seconds is not None]
        return max(lags) if lags else None

    @property
    def last_shard(self) -> st.ShardState | None:
        done = [s for s in self.shards if s.last_event_at is not None]
        return max(done, key=lambda s: s.last_event_at or _EPOCH) if done else None

    @property
    def last_error(self) -> str | None:
        if self.stream is not None and self.stream.last_error:
            return self.stream.last_error
        latest = max(self.dead_letters.values(), key=lambda d: d.last_seen or datetime.min, default=None)
        return None if latest is None else f"dead letter: {latest.last_reason}"

    def backfill_state(self) -> str:
        run = self.backfill
        if run is None:
            return "none"
        return "finished" if run.finished_at is not None else "running"

    def to_json(self) -> dict[str, Any]:
        run = self.backfill
        last = self.last_shard
        return {
            "table": self.table,
            "mappings": [{"mapping": m, "target": t} for m, t in self.mappings],
            "backfill": None if run is None else {
                "state": self.backfill_state(), "kind": run.kind, "source": run.source,
                "started_at": run.started_at.isoformat(), "point_in_time": run.point_in_time.isoformat(),
                "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
                "items": run.items, "total_items": run.total_items,
                "segments": {"total": self.segments.total, "done": self.segments.done,
                             "claimed": self.segments.claimed, "items": self.segments.items},
            },
            "stream": None if self.stream is None else {
                "arn": self.stream.stream_arn, "view_type": self.stream.view_type,
                "started_at": self.stream.started_at.isoformat(), "last_error": self.stream.last_error},
            "shards": {"open": len(self.open_shards), "finished": len(self.shards) - len(self.open_shards),
                       "detail": [{
                           "stream_arn": s.stream_arn, "shard_id": s.shard_id, "parent": s.parent_shard_id,
                           "finished": s.finished, "sequence": None if s.sequence is None else str(s.sequence),
                           "records": s.records,
                           "last_event_at": None if s.last_event_at is None else s.last_event_at.isoformat(),
                           "lag_seconds": s.lag_seconds, "owner": s.owner if s.lease_live else None,
                           "epoch": s.epoch} for s in self.shards]},
            "last_sequence": None if last is None or last.sequence is None else str(last.sequence),
            "last_event_at": None if last is None or last.last_event_at is None else last.last_event_at.isoformat(),
            "lag_seconds": self.lag_seconds,
            "lease_owners": sorted({s.owner for s in self.shards if s.owner and s.lease_live}),
            "dead_letters": {m: d.open for m, d in self.dead_letters.items()},
            "last_error": self.last_error,
        }

    def render(self) -> str:
        targets = ", ".join(f"{t} [{m}]" for m, t in self.mappings)
        lines = [f"{self.table} -> {targets}"]
        run = self.backfill
        if run is None:
            lines.append("  backfill: none")
        else:
            total = f"/{run.total_items:,}" if run.total_items else ""
            lines.append(f"  backfill: {self.backfill_state()} ({run.kind}), {run.items:,}{total} items, "
                         f"{self.segments.done}/{self.segments.total} segments done, point in time "
                         f"{run.point_in_time:%Y-%m-%d %H:%M:%S%z}")
        if self.stream is None:
            lines.append("  stream: not followed yet")
        else:
            lines.append(f"  stream: {self.stream.stream_arn} ({self.stream.view_type or '?'})")
        last = self.last_shard
        lag = self.lag_seconds
        lines.append(f"  shards: {len(self.open_shards)} open, {len(self.shards) - len(self.open_shards)} finished"
                     + ("" if last is None else f"; last sequence {last.sequence} at "
                        f"{last.last_event_at:%Y-%m-%d %H:%M:%S%z}")
                     + ("" if lag is None else f"; lag {lag:,.1f}s"))
        for s in self.open_shards:
            owner = f"leased by {s.owner} (epoch {s.epoch})" if s.lease_live else "no live lease"
            lines.append(f"    {s.shard_id}: {s.records:,} records, sequence {s.sequence}, {owner}")
        dl = sum(d.open for d in self.dead_letters.values())
        lines.append(f"  dead letters: {dl} open" + (
            "" if not dl else " (" + ", ".join(f"{m}: {d.open}" for m, d in self.dead_letters.items()) + ")"))
        if self.last_error:
            lines.append(f"  last error: {self.last_error}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class StatusReport:
    tables: tuple[TableStatus, ...]

    def render(self) -> str:
        return "\n\n".join(t.render() for t in self.tables)

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.tables]


def status(settings: Settings, tables: Sequence[str] = ()) -> StatusReport:
    """The state of every mapped table (or of ``tables``), from the control schema."""
    plans = table_plans(settings, tables)
    out = []
    with open_state(settings) as conn:
        for plan in plans:
            out.append(TableStatus(
                table=plan.source_table,
                mappings=tuple((m.name, str(m.target)) for m in plan.mappings),
                backfill=backfills.get(conn, plan.source_table),
                segments=st.segment_progress(conn, plan.source_table),
                stream=st.stream(conn, plan.source_table),
                shards=tuple(st.shards(conn, plan.source_table)),
                dead_letters=st.dead_letters(conn, plan.source_table),
            ))
    return StatusReport(tuple(out))
