"""What every data-moving runner does first: pick the mappings of a table, compile them, reach AWS and PostgreSQL,
and apply one batch of changes for every mapping of a table."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ddbrepl.codec.rows import Converter, compile_mapping
from ddbrepl.db import connect
from ddbrepl.errors import ConfigError
from ddbrepl.mapping.check import load_mappings
from ddbrepl.mapping.model import Mapping
from ddbrepl.records import ApplyStats, Op, Origin, RawChange
from ddbrepl.settings import Settings
from ddbrepl.sink.apply import apply
from ddbrepl.sources.aws import AwsConfig
from ddbrepl.state import migrate


def aws_config(settings: Settings) -> AwsConfig:
    return AwsConfig(endpoint_url=settings.endpoint_url, region=settings.region, profile=settings.profile)


def worker_id() -> str:
    """``host:pid``: unique among live processes, readable in ``status``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class TablePlan:
    """Every mapping reading one DynamoDB table, compiled once."""

    source_table: str
    converters: tuple[Converter, ...]

    @property
    def mappings(self) -> tuple[Mapping, ...]:
        return tuple(c.mapping for c in self.converters)

    def needs_items(self, view_type: str | None) -> bool:
        """Records of a stream with this view carry no new image, and some mapping reads more than the keys: the
        items must be read from the table (BatchGetItem)."""
        return view_type in ("KEYS_ONLY", "OLD_IMAGE") and not all(c.keys_suffice for c in self.converters)

    @property
    def target_tables(self) -> list[str]:
        out = []
        for m in self.mappings:
            out.append(str(m.target))
            out += [str(c.target) for c in m.children]
        return out


def table_plans(settings: Settings, tables: Sequence[str] = ()) -> list[TablePlan]:
    """Group the (selected) mappings by DynamoDB table; raises MappingError on invalid mappings."""
    by_table: dict[str, list[Converter]] = {}
    for m in load_mappings(settings.mappings, tables):
        by_table.setdefault(m.source_table, []).append(compile_mapping(m))
    return [TablePlan(t, tuple(cs)) for t, cs in sorted(by_table.items())]


def one_table(settings: Settings, table: str) -> TablePlan:
    plans = table_plans(settings, (table,))
    if len(plans) != 1:
        raise ConfigError(f"--table {table!r} names {len(plans)} DynamoDB tables", "name one DynamoDB table")
    return plans[0]


def open_state(settings: Settings, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection to a database whose control schema is current (else a Fatal error with the fix)."""
    conn = connect(settings.require_database(), autocommit=autocommit)
    try:
        migrate.require(conn)
    except Exception:
        conn.close()
        raise
    return conn


def apply_changes(conn: psycopg.Connection[Any], plan: TablePlan, changes: Sequence[RawChange], *,
                  origin: Origin) -> ApplyStats:
    """Convert ``changes`` with every mapping of the table and apply each mapping's ops, inside the caller's
    transaction. Conversion failures become dead letters through the sink; the batch goes on."""
    stats = ApplyStats()
    for converter in plan.converters:
        ops: list[Op] = [op for op in map(converter, changes) if op is not None]
        if ops:
            stats += apply(conn, converter.mapping, ops, origin=origin)
    return stats
