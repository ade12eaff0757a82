"""Build mapping model objects directly, without YAML, for codec tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ddbrepl.mapping.model import Child, Column, Condition, Filter, Mapping, TableRef, Transform
from ddbrepl.mapping.paths import parse_path
from ddbrepl.mapping.types import parse_type


def col(name: str, source: str, sql_type: str, *transforms: Transform, in_child: bool = False, **kw: Any) -> Column:
    """A Column reading ``source`` into ``sql_type``; keyword arguments are Column fields."""
    return Column(name, parse_path(source, in_child=in_child), parse_type(sql_type), transforms=transforms, **kw)


def child(table: str, source: str, *columns: Column, only_keys: frozenset[str] | None = None) -> Child:
    return Child(TableRef("public", table), parse_path(source), columns, only_keys)


def cond(path: str, op: str, value: Any) -> Condition:
    return Condition(parse_path(path), op, value)  # type: ignore[arg-type]


def mapping(
    *columns: Column,
    key: tuple[str, ...] = ("pk",),
    name: str = "m",
    events: tuple[str, ...] | None = None,
    where: tuple[Condition, ...] = (),
    **kw: Any,
) -> Mapping:
    """A Mapping over DynamoDB table ``src`` into ``public.dst``; ``events``/``where`` build its filter."""
    flt = None
    if events is not None or where:
        flt = Filter(frozenset(events or ("INSERT", "MODIFY", "REMOVE")), where)
    return Mapping(name, Path(f"{name}.yaml"), "src", key, TableRef("public", "dst"), columns, filter=flt, **kw)
