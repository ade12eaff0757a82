"""One Mapping compiled into a Converter: RawChange → Upsert | Delete | Rejected, or None when filtered out.

Everything a mapping says is checked and precompiled once (paths, regexes, maps, defaults); the per-change
work is a loop over small closures that decode only the attributes the mapping reads. Any value that does not
fit becomes a `records.Rejected` naming the mapping, column, attribute path and an excerpt of the value;
nothing here raises on bad data, and nothing becomes a silent NULL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from ddbrepl.codec.columns import ColumnPlan, ValueFn, compile_column
from ddbrepl.codec.filters import CompiledFilter, compile_filter
from ddbrepl.codec.paths import elements, walk
from ddbrepl.codec.reject import Reject, excerpt, printable
from ddbrepl.mapping.model import Child, Mapping
from ddbrepl.records import ChildRows, Delete, Op, RawChange, Rejected, Upsert

log = logging.getLogger(__name__)


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
    value_fns: tuple[ValueFn, ...]
    key_of: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    """Picks ``Upsert.key`` out of the values (``Mapping.key_indexes``)."""
    key_plans: tuple[ColumnPlan, ...]
    children: tuple[ChildPlan, ...]
    filter: CompiledFilter | None
    keys_suffice: bool
    """Every column reads a key attribute or ``$event``: a KEYS_ONLY stream record is enough."""

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
        if flt is not None and change.event not in flt.events:
            return None
        image = change.new_image
        if image is None and self.keys_suffice:
            image = change.keys  # KEYS_ONLY stream: enough when the mapping reads nothing but keys
        if image is None:
            return self._rejected(
                change,
                f"{change.event} carries no new image: the stream view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES",
            )
        if flt is not None and not flt.matches(image, change):
            # The item left this mapping's entity (its type changed): drop the row it had, if deletes are taken.
            old = change.old_image
            if change.event == "MODIFY" and old is not None and "REMOVE" in flt.events and flt.matches(old, change):
                return self._delete(change, self.mapping.delete == "soft")
            return None
        try:
            values = tuple([fn(image, change, None) for fn in self.value_fns])
        except Reject:
            return self._first_reject(self.columns, image, change)
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
        return Upsert(self.key_of(values), values, change.sequence, children)

    def _delete(self, change: RawChange, soft: bool) -> Op:
        """The key comes from ``Keys`` only (a REMOVE under NEW_IMAGE has nothing else), transformed."""
        keys = change.keys
        try:
            key = tuple([plan.value(keys, change, None) for plan in self.key_plans])
        except Reject:
            return self._first_reject(self.key_plans, keys, change)
        return Delete(key, change.sequence, soft)

    def _first_reject(self, plans: Sequence[ColumnPlan], image: AnyMapping[str, Any], change: RawChange) -> Rejected:
        """Find which column refused (the fast path above does not track it): rerun them one by one."""
        for plan in plans:
            try:
                plan.value(image, change, None)
            except Reject as exc:
                return self._rejected(change, exc.reason, plan, exc.value)
        raise AssertionError("a column rejected once and accepted on a rerun")  # pragma: no cover

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
        value_fns=tuple(plan.value for plan in columns),
        key_of=_picker(key_indexes),
        key_plans=key_plans,
        children=tuple(_compile_child(i, c) for i, c in enumerate(mapping.children)),
        filter=None if mapping.filter is None else compile_filter(mapping.filter),
        keys_suffice=not mapping.children
        and all(
            c.source.root == "event"
            or (c.source.root == "attr" and c.source.steps == (c.source.top,) and c.source.top in mapping.source_key)
            for c in mapping.columns
        ),
    )


def _picker(indexes: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    if len(indexes) == 1:
        (only,) = indexes
        return lambda values: (values[only],)
    return itemgetter(*indexes)  # several indexes: itemgetter already returns a tuple


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
