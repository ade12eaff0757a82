"""Evaluate parsed attribute paths (`mapping.paths.parse_path`) on a change, decoding only what is read.

A path is compiled once into a `Getter`; a getter walks the raw DynamoDB JSON (``M`` by name, ``L`` by index)
and decodes only the value it lands on. A mapping that reads 3 attributes of a 40-attribute item decodes 3.

A getter returns `MISSING` when the attribute (or any step of the way) is absent or of the wrong container
type, as DynamoDB's own document paths behave, and ``None`` for a present ``{"NULL": true}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ddbrepl.codec.attrs import decode, decode_item
from ddbrepl.mapping.model import AttrPath
from ddbrepl.records import RawChange


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""The attribute is not there (distinct from None, a present NULL)."""


@dataclass(frozen=True, slots=True)
class Element:
    """One element of an exploded child list, map or set: ``raw`` is its attribute value in DynamoDB JSON."""

    index: int | None
    key: str | None
    raw: Mapping[str, Any]


Getter = Callable[[Mapping[str, Any], RawChange, Element | None], Any]
"""(image in DynamoDB JSON, the change, the child element or None) → decoded value or MISSING."""


def walk(av: Mapping[str, Any] | None, steps: tuple[str | int, ...]) -> Mapping[str, Any] | None:
    """Follow ``steps`` through raw M (by name) and L (by index) values; None when a step finds nothing."""
    for step in steps:
        if av is None:
            return None
        if type(step) is str:
            inner = av.get("M")
            av = inner.get(step) if isinstance(inner, Mapping) else None
        else:
            items = av.get("L")
            av = items[step] if isinstance(items, list) and type(step) is int and 0 <= step < len(items) else None
    return av


def _attr_getter(path: AttrPath) -> Getter:
    steps = path.steps
    name = str(steps[0])
    if len(steps) == 1:

        def top(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
            av = image.get(name)
            return MISSING if av is None else decode(av)

        return top
    rest = steps[1:]

    def nested(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
        av = walk(image.get(name), rest)
        return MISSING if av is None else decode(av)

    return nested


def _item(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
    return decode_item(image)


def _event_name(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
    return change.event


def _event_time(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
    return MISSING if change.approx_time is None else change.approx_time


def _event_sequence(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
    return MISSING if change.sequence is None else change.sequence


def _element_getter(path: AttrPath) -> Getter:
    field, rest = path.steps[0], path.steps[1:]
    if field == "index":
        return lambda image, change, element: MISSING if element is None or element.index is None else element.index
    if field == "key":
        return lambda image, change, element: MISSING if element is None or element.key is None else element.key

    def value(image: Mapping[str, Any], change: RawChange, element: Element | None) -> Any:
        if element is None:
            return MISSING
        av = walk(element.raw, rest) if rest else element.raw
        return MISSING if av is None else decode(av)

    return value


_EVENT: dict[str, Getter] = {"name": _event_name, "time": _event_time, "sequence": _event_sequence}


def compile_path(path: AttrPath) -> Getter:
    """Build the getter for ``path`` once, at mapping-compile time."""
    if path.root == "attr":
        return _attr_getter(path)
    if path.root == "item":
        return _item
    if path.root == "event":
        return _EVENT[str(path.steps[0])]
    if path.root == "element":
        return _element_getter(path)
    raise ValueError(f"unknown path root {path.root!r} in {path.text!r}")


def elements(value_av: Mapping[str, Any], only_keys: frozenset[str] | None = None) -> list[Element] | None:
    """The elements a child explodes: L → ($index, $value), M → ($key, $value), sets → sorted ($index, $value).

    None when ``value_av`` is neither a list, a map nor a set (the caller rejects the change).
    """
    items = value_av.get("L")
    if isinstance(items, list):
        return [Element(i, None, av) for i, av in enumerate(items)]
    entries = value_av.get("M")
    if isinstance(entries, Mapping):
        return [Element(None, key, av) for key, av in entries.items() if only_keys is None or key in only_keys]
    for tag in ("SS", "NS", "BS"):
        members = value_av.get(tag)
        if members is not None:
            ordered = sorted(decode({tag: members}))
            single = tag[0]
            return [Element(i, None, {single: _raw_scalar(single, v)}) for i, v in enumerate(ordered)]
    return None


def _raw_scalar(tag: str, value: Any) -> Any:
    # Decoded set members go back to DynamoDB JSON so that `$value` reads them like any other element.
    return str(value) if tag == "N" else value
