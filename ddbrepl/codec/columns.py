"""One column compiled into a single closure: read the attribute, transform, convert, apply the NULL policy.

The closure is fused per shape (top-level attribute or any path; with or without transforms) so the per-change
cost is one Python call per column plus the decode and conversion themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from typing import Any

from ddbrepl.codec.attrs import decode
from ddbrepl.codec.convert import make_converter
from ddbrepl.codec.fast import fast_column
from ddbrepl.codec.paths import MISSING, Element, compile_path
from ddbrepl.codec.reject import Reject
from ddbrepl.codec.transforms import compile_transforms, scalar
from ddbrepl.mapping.model import AttrPath, Column
from ddbrepl.records import RawChange

ValueFn = Callable[[AnyMapping[str, Any], RawChange, Element | None], Any]
"""(image in DynamoDB JSON, change, child element or None) → the column's PostgreSQL-ready value; may raise Reject."""

_NO_DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """A compiled column: ``value`` computes it; ``name`` and ``path`` label its rejections."""

    name: str
    path: str
    value: ValueFn


def compile_column(column: Column, *, required: bool = False, shortcuts: bool = True) -> ColumnPlan:
    """Compile one column; a default that does not fit the column's type is a mapping error (ValueError).

    ``shortcuts=False`` builds only the general closure (`fast` shortcuts are tested for equality against it).

    NULL policy: an absent or NULL attribute (or a transform yielding None) takes the default if there is one,
    else is rejected for a NOT NULL or primary-key column, else is NULL.
    """
    to_sql = make_converter(column.sql_type, column.on_overflow)
    default = _NO_DEFAULT
    if column.default is not None:
        try:
            default = to_sql(scalar(column.default))
        except Reject as exc:
            raise ValueError(f"column {column.name!r}: default {column.default!r} {exc.reason}") from None
    must = required or column.primary_key or not column.nullable
    transform = compile_transforms(column.transforms)

    def null(value: Any) -> Any:
        if default is not _NO_DEFAULT:
            return default
        if must:
            raise Reject(f"is {'absent' if value is MISSING else 'NULL'}, and the column is NOT NULL with no default")
        return None

    general = _general(column.source, transform, to_sql, null)
    transforms = column.transforms
    epoch = str(transforms[0].arg) if len(transforms) == 1 and transforms[0].kind == "epoch" else None
    if shortcuts and (transform is None or epoch is not None):
        # The commonest shapes get a fused shortcut that falls back to ``general`` for anything unusual.
        source, truncate = column.source, column.on_overflow == "truncate"
        fast = fast_column(
            source.root, source.steps, column.sql_type, general, to_sql, null, truncate=truncate, epoch=epoch
        )
        if fast is not None:
            return ColumnPlan(column.name, column.source.text, fast)
    return ColumnPlan(column.name, column.source.text, general)


def _general(
    source: AttrPath,
    transform: Callable[[Any], Any] | None,
    to_sql: Callable[[Any], Any],
    null: Callable[[Any], Any],
) -> ValueFn:
    """The column's closure for any value: decode, transform, convert, NULL policy."""
    if source.root == "attr" and len(source.steps) == 1:
        name = str(source.steps[0])

        def top(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
            av = image.get(name)
            if av is None:
                return null(MISSING)
            value = decode(av)
            if value is not None and transform is not None:
                value = transform(value)
            return null(value) if value is None else to_sql(value)

        return top

    get = compile_path(source)

    def anywhere(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        value = get(image, change, element)
        if value is MISSING or value is None:
            return null(value)
        if transform is not None:
            value = transform(value)
            if value is None:
                return null(None)
        return to_sql(value)

    return anywhere

