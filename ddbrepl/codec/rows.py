"""One Mapping compiled into a Converter: RawChange → Upsert | Delete | Rejected, or None when filtered out.

Everything a mapping says is checked and precompiled once (paths, regexes, maps, defaults); the per-change
work is a loop over small closures that decode only the attributes the mapping reads. Any value that does not
fit becomes a `records.Rejected` naming the mapping, column, attribute path and an excerpt of the value;
nothing here raises on bad data, and nothing becomes a silent NULL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from typing import Any

from ddbrepl.codec.convert import ToSql, make_converter
from ddbrepl.codec.filters import CompiledFilter, compile_filter
from ddbrepl.codec.paths import MISSING, Element, Getter, compile_path, elements, walk
from ddbrepl.codec.reject import Reject, excerpt, printable
from ddbrepl.codec.transforms import Step, compile_transforms, scalar
from ddbrepl.mapping.model import Child, Column, Mapping
from ddbrepl.records import ChildRows, Delete, Op, RawChange, Rejected, Upsert

log = logging.getLogger(__name__)

_NO_DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """One column, compiled: read → transform → convert, with its NULL policy."""

    name: str
    path: str
    get: Getter
    transform: Step | None
    to_sql: ToSql
    default: Any
    """The converted default, or _NO_DEFAULT."""
    required: bool

    def value(self, image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        """The column's value for this change; raises Reject when it does not fit."""
        value = self.get(image, change, element)
        if value is not MISSING and value is not None:
            if self.transform is not None:
                value = self.transform(value)
            if value is not None:
                return self.to_sql(value)
        if self.default is not _NO_DEFAULT:
            return self.default
        if self.required:
            what = "absent" if value is MISSING else "NULL"
            raise Reject(f"is {what}, and the column is NOT NULL with no default")
        return None


def compile_column(column: Column, *, required: bool = False) -> ColumnPlan:
    """Compile one column; a default that does not fit the column's type is a mapping error (ValueError)."""
    to_sql = make_converter(column.sql_type, column.on_overflow)
    default = _NO_DEFAULT
    if column.default is not None:
        try:
            default = to_sql(scalar(column.default))
        except Reject as exc:
            raise ValueError(f"column {column.name!r}: default {column.default!r} {exc.reason}") from None
    return ColumnPlan(
        name=column.name,
        path=column.source.text,
        get=compile_path(column.source),
        transform=compile_transforms(column.transforms),
        to_sql=to_sql,
        default=default,
        required=required or column.primary_key or not column.nullable,
    )


@dataclass(frozen=True, slots=True)
class ChildPlan:
    index: int
    table: str
    source_top: str
    source_rest: tuple[str | int, ...]
    source_text: str
    only_keys: frozenset[str] | None
    columns: tuple[ColumnPlan, ...]


def _compile_child(index: int, child: Child) -> ChildPlan:
    top = child.source.top
    if child.source.root != "attr" or top is None:
        raise ValueError(f"child {child.target}: `from` must be an attribute path, not {child.source.text!r}")
    return ChildPlan(
        index=index,
        table=child.target.table,
        source_top=top,
        source_rest=child.source.steps[1:],
        source_text=child.source.text,
        only_keys=child.only_keys,
        columns=tuple(compile_column(c) for c in child.columns),
    )


class _ChildReject(Exception):
    def __init__(self, plan: ChildPlan, column: ColumnPlan, where: str, reject: Reject) -> None:
        super().__init__(reject.reason)
        self.plan, self.column, self.where, self.reject = plan, column, where, reject


@dataclass(frozen=True, slots=True)
class Converter:
    """A compiled mapping; call it with a RawChange. Build with `compile_mapping`."""

    mapping: Mapping
    columns: tuple[ColumnPlan, ...]
    key_indexes: tuple[int, ...]
    key_plans: tuple[ColumnPlan, ...]
    children: tuple[ChildPlan, ...]
    filter: CompiledFilter | None

    def __call__(self, change: RawChange) -> Op | None:
        """Convert one change; None: this mapping does not take it (filter, events, ignored TTL expiry)."""
        try:
            return self._convert(change)
        except Exception as exc:  # a bug or truly malformed input must cost one record, not the run
            log.debug("unexpected error converting a change for mapping %s", self.mapping.name, exc_info=True)
            return self._rejected(change, f"unexpected {type(exc).__name__}: {exc}")

    def _convert(self, change: RawChange) -> Op | None:
        flt = self.filter
        if change.event == "REMOVE":
            if flt is not None and not flt.takes_remove(change):
                return None
            if change.ttl_delete and self.mapping.ttl_delete == "ignore":
                return None
            soft = self.mapping.ttl_delete == "soft" if change.ttl_delete else self.mapping.delete == "soft"
            return self._delete(change, soft)
        image = change.new_image
        if image is None:
            return self._rejected(
                change,
                f"{change.event} carries no new image: the stream view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES",
            )
        if flt is not None:
            if change.event not in flt.events:
                return None
            if not flt.matches(image, change):
                # The item left this mapping's entity (its type changed): drop the row it had, if any.
                old = change.old_image
                if change.event == "MODIFY" and old is not None and flt.matches(old, change):
                    return self._delete(change, self.mapping.delete == "soft")
                return None
        values = []
        plan: ColumnPlan | None = None
        try:
            for plan in self.columns:
                values.append(plan.value(image, change, None))
        except Reject as exc:
            return self._rejected(change, exc.reason, plan, exc.value)
        children: tuple[ChildRows, ...] = ()
        if self.children:
            try:
                children = tuple(self._child_rows(child, image, change) for child in self.children)
            except _ChildReject as exc:
                return self._rejected(
                    change,
                    exc.reject.reason,
                    exc.column,
                    exc.reject.value,
                    column_name=f"{exc.plan.table}.{exc.column.name}",
                    path=exc.where,
                )
        return Upsert(tuple(values[i] for i in self.key_indexes), tuple(values), change.sequence, children)

    def _delete(self, change: RawChange, soft: bool) -> Op:
        """The key comes from ``Keys`` only (a REMOVE under NEW_IMAGE has nothing else), transformed."""
        key = []
        plan: ColumnPlan | None = None
        try:
            for plan in self.key_plans:
                key.append(plan.value(change.keys, change, None))
        except Reject as exc:
            return self._rejected(change, exc.reason, plan, exc.value)
        return Delete(tuple(key), change.sequence, soft)

    def _child_rows(self, plan: ChildPlan, image: AnyMapping[str, Any], change: RawChange) -> ChildRows:
        av = walk(image.get(plan.source_top), plan.source_rest)
        if av is None or "NULL" in av:
            return ChildRows(plan.index, ())
        found = elements(av, plan.only_keys)
        if found is None:
            reject = Reject(f"children come from L, M or a set, got {next(iter(av), '?')}", dict(av))
            raise _ChildReject(plan, plan.columns[0], plan.source_text, reject)
        rows = []
        for element in found:
            row = []
            for column in plan.columns:
                try:
                    row.append(column.value(image, change, element))
                except Reject as exc:
                    where = (
                        f"{plan.source_text}[{element.index}]"
                        if element.key is None
                        else f"{plan.source_text}.{element.key}"
                    )
                    raise _ChildReject(plan, column, f"{where} {column.path}", exc) from None
            rows.append(tuple(row))
        return ChildRows(plan.index, tuple(rows))

    def _rejected(
        self,
        change: RawChange,
        reason: str,
        plan: ColumnPlan | None = None,
        value: Any = None,
        *,
        column_name: str | None = None,
        path: str | None = None,
    ) -> Rejected:
        return Rejected(
            mapping=self.mapping.name,
            reason=printable(reason if plan is None else f"column {plan.name!r}: {reason}"),
            change=change,
            column=column_name or (plan.name if plan is not None else None),
            path=printable(path or (plan.path if plan is not None else "")) or None,
            value_excerpt=None if value is None else excerpt(value),
        )


def compile_mapping(mapping: Mapping) -> Converter:
    """Compile ``mapping`` once; the result converts any number of changes. Raises ValueError on a mapping the
    checker should have refused (bad regex, default that does not fit its column)."""
    columns = tuple(compile_column(c) for c in mapping.columns)
    key_indexes = mapping.key_indexes
    key_plans = tuple(columns[i] for i in key_indexes)
    for plan, column in zip(key_plans, mapping.key_columns, strict=True):
        if column.source.root != "attr" or column.source.top not in mapping.source_key:
            raise ValueError(
                f"key column {plan.name!r} must read a key attribute ({', '.join(mapping.source_key)}), "
                f"not {plan.path!r}"
            )
    return Converter(
        mapping=mapping,
        columns=columns,
        key_indexes=key_indexes,
        key_plans=key_plans,
        children=tuple(_compile_child(i, c) for i, c in enumerate(mapping.children)),
        filter=None if mapping.filter is None else compile_filter(mapping.filter),
    )


def route(converters: Iterable[Converter], change: RawChange) -> list[tuple[Mapping, Op]]:
    """Every mapping that takes ``change``, with its Op (single-table design: each picks its entity)."""
    routed = []
    for converter in converters:
        op = converter(change)
        if op is not None:
            routed.append((converter.mapping, op))
    return routed


def convert_all(converter: Converter, changes: Sequence[RawChange]) -> list[Op]:
    """Convert a batch, dropping filtered-out changes (a convenience for runners and benchmarks)."""
    return [op for op in map(converter, changes) if op is not None]
