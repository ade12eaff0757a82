"""Fused closures for the commonest column shapes, each equal to the general column closure it shortcuts.

A column without transforms that reads an attribute (top-level or nested) into text/varchar, an integer type,
unbounded numeric, boolean, text[] (from SS) or numeric[] (from NS), or any attribute or ``$item`` into json/jsonb,
and a column whose only transform is ``epoch`` into timestamptz, gets a closure that reads the raw DynamoDB JSON and
produces the PostgreSQL-ready value in place: no `attrs.decode` call, no converter call, no Decimal for a JSON
number. The shortcut is taken only when the value is plainly valid (an S that is ASCII with no
NUL and fits, an N of at most 18 digits inside the integer range, …); every other value, including every
invalid one, goes to ``general``, the column's ordinary closure, so results and `Reject` reasons are unchanged.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from collections.abc import Mapping as AnyMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ddbrepl.codec.attrs import decode, decode_item
from ddbrepl.codec.jsontext import item_json, value_json
from ddbrepl.codec.paths import MISSING, Element, walk
from ddbrepl.codec.transforms import _MAX_US, _MIN_US, EPOCH
from ddbrepl.mapping.model import INTEGER_TYPES, SqlType
from ddbrepl.records import RawChange

ValueFn = Callable[[AnyMapping[str, Any], RawChange, Element | None], Any]

_SMALL_INT = re.compile(r"-?(?:0|[1-9]\d{0,17})", re.ASCII).fullmatch
"""N texts that are integers below 10**18: int(text) is exact and equals int(Decimal(text))."""
_PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9]\d{0,37})(?:\.\d{1,100})?", re.ASCII).fullmatch
"""N texts inside DynamoDB's range and PostgreSQL numeric's limits: Decimal(text) is what the general path returns."""


def fast_column(
    root: str,
    steps: tuple[str | int, ...],
    sql_type: SqlType,
    general: ValueFn,
    to_sql: Callable[[Any], Any],
    null: Callable[[Any], Any],
    *,
    truncate: bool = False,
    epoch: str | None = None,
) -> ValueFn | None:
    """The shortcut closure for a column, or None when its shape has none: no transforms, or only
    ``epoch: seconds|millis`` (``epoch``) into timestamptz.

    ``general`` is the column's ordinary closure (taken for anything unusual); ``to_sql`` and ``null`` are its
    converter and NULL policy, which the json closures reuse on their slow path.
    """
    if epoch is not None:
        if root != "attr" or sql_type.array or sql_type.base != "timestamptz":
            return None
        return _epoch(str(steps[0]), steps[1:], 1_000_000 if epoch == "seconds" else 1_000, general)
    if sql_type.array:
        element = sql_type.element
        if root != "attr" or element.array:
            return None
        if element.base == "text" and element.length is None:
            return _text_set(str(steps[0]), steps[1:], general)
        if element.base == "numeric" and element.precision is None:
            return _number_set(str(steps[0]), steps[1:], general)
        return None
    base = sql_type.base
    if base in ("json", "jsonb"):
        return _json(root, steps, to_sql, null, sort_keys=base == "json")
    if root != "attr":
        return None
    name, rest = str(steps[0]), steps[1:]
    if base in ("text", "varchar"):
        return _text(name, rest, sql_type.length, truncate, general)
    if base in INTEGER_TYPES:
        bits = INTEGER_TYPES[base]
        return _integer(name, rest, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, general)
    if base == "numeric" and sql_type.precision is None:
        return _numeric(name, rest, general)
    if base == "boolean":
        return _boolean(name, rest, general)
    return None


def _text(
    name: str, rest: tuple[str | int, ...], length: int | None, truncate: bool, general: ValueFn
) -> ValueFn:
    limit = length if length is not None else sys.maxsize

    def text(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            value = av.get("S")
            if value.__class__ is str and value.isascii() and "\x00" not in value:
                if len(value) <= limit:
                    return value
                if truncate:  # on_overflow: truncate, as the general path cuts it (ASCII: one char, one byte)
                    return value[:limit]
        return general(image, change, element)

    return text


def _integer(name: str, rest: tuple[str | int, ...], low: int, high: int, general: ValueFn) -> ValueFn:
    def integer(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            text = av.get("N")
            if text.__class__ is str and _SMALL_INT(text) is not None:
                value = int(text)
                if low <= value <= high:
                    return value
        return general(image, change, element)

    return integer


def _numeric(name: str, rest: tuple[str | int, ...], general: ValueFn) -> ValueFn:
    def numeric(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            text = av.get("N")
            if text.__class__ is str and _PLAIN_DECIMAL(text) is not None:
                return Decimal(text)
        return general(image, change, element)

    return numeric


def _boolean(name: str, rest: tuple[str | int, ...], general: ValueFn) -> ValueFn:
    def boolean(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            value = av.get("BOOL")
            if value is True or value is False:
                return value
        return general(image, change, element)

    return boolean


def _epoch(name: str, rest: tuple[str | int, ...], scale: int, general: ValueFn) -> ValueFn:
    """A whole N of epoch seconds or millis into timestamptz, in int arithmetic as `transforms.epoch` does it."""

    def epoch(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            text = av.get("N")
            if text.__class__ is str and _SMALL_INT(text) is not None:
                micros = int(text) * scale
                if _MIN_US <= micros <= _MAX_US:
                    return EPOCH + timedelta(microseconds=micros)
        return general(image, change, element)

    return epoch


def _text_set(name: str, rest: tuple[str | int, ...], general: ValueFn) -> ValueFn:
    """An SS into text[]: sorted, duplicates dropped, as the general path sorts the decoded frozenset."""

    def text_set(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            members = av.get("SS")
            if members.__class__ is list and members:
                try:
                    joined = "".join(members)
                except TypeError:
                    return general(image, change, element)
                if joined.isascii() and "\x00" not in joined:
                    return sorted(set(members))
        return general(image, change, element)

    return text_set


def _number_set(name: str, rest: tuple[str | int, ...], general: ValueFn) -> ValueFn:
    """An NS into numeric[]: sorted by value, equal numbers collapsed as the general path's frozenset does."""

    def number_set(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is not None and len(av) == 1:
            members = av.get("NS")
            if members.__class__ is list and members:
                for text in members:
                    if text.__class__ is not str or _PLAIN_DECIMAL(text) is None:
                        return general(image, change, element)
                return sorted(frozenset(map(Decimal, members)))
        return general(image, change, element)

    return number_set


def _json(
    root: str,
    steps: tuple[str | int, ...],
    to_sql: Callable[[Any], Any],
    null: Callable[[Any], Any],
    *,
    sort_keys: bool,
) -> ValueFn | None:
    """``$item`` or an attribute into json(b): raw DynamoDB JSON straight to JSON text (`jsontext`).

    Whatever `jsontext` declines, and any text holding an escaped NUL (jsonb refuses it; the general path
    decides whether it really is one), goes through decode + `convert` exactly as before, with its `Reject`.
    """
    if root == "item":

        def item(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
            text = item_json(image, sort_keys=sort_keys)
            if text is None or "\\u0000" in text:
                return to_sql(decode_item(image))
            return text

        return item
    if root != "attr":
        return None
    name, rest = str(steps[0]), steps[1:]

    def attr(image: AnyMapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = image.get(name)
        if rest:
            av = walk(av, rest)
        if av is None:
            return null(MISSING)
        text = None if "NULL" in av else value_json(av, sort_keys=sort_keys)
        if text is None or "\\u0000" in text:
            value = decode(av)
            return null(value) if value is None else to_sql(value)
        return text

    return attr
