"""Column transforms: pure functions from one decoded value to another, applied in the mapping's order.

Each raises `Reject` rather than guess: a string without the expected prefix, a regex that does not match,
a value missing from a ``map``, an epoch outside the years 1–9999. A NULL or absent value never reaches a
transform (the column's ``default`` / nullability decide what happens to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from ddbrepl.codec.reject import Reject, type_name
from ddbrepl.mapping.model import Transform

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WIDE = Context(prec=200, Emax=999_999, Emin=-999_999, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
"""Arithmetic room for exact products of DynamoDB numbers (38 digits, exponents within ±130)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})

Step = Callable[[Any], Any]


def as_number(value: Any) -> Decimal:
    """An N value as Decimal; a string only when it is a plain decimal literal ("12", "-1.5e3"), exactly."""
    if value.__class__ is Decimal:
        return value
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    raise Reject(f"expected a number (N), got {type_name(value)}", value)


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Reject(f"{what} applies to strings (S), got {type_name(value)}", value)
    return value


def strip_prefix(value: Any, prefix: str) -> str:
    """Remove ``prefix`` (``"USER#123"`` → ``"123"``); a value without it is rejected, not passed through."""
    text = _need_str(value, "strip_prefix")
    if not text.startswith(prefix):
        raise Reject(f"does not start with {prefix!r}", value)
    return text[len(prefix) :]


def regex(value: Any, pattern: re.Pattern[str]) -> str:
    """Keep the first group of the first match (the whole match when the pattern has no group)."""
    text = _need_str(value, "regex")
    m = pattern.search(text)
    if m is None:
        raise Reject(f"does not match regex {pattern.pattern!r}", value)
    kept = m.group(1) if pattern.groups else m.group(0)
    if kept is None:
        raise Reject(f"regex {pattern.pattern!r} matched but its first group did not take part", value)
    return kept


def epoch(value: Any, unit: str) -> datetime:
    """N seconds or milliseconds since 1970-01-01 UTC → an aware UTC datetime, exact to the microsecond.

    Fractions below a microsecond round half-even (PostgreSQL keeps microseconds). Outside years 1–9999 the
    value is rejected: milliseconds read as seconds land in the year 47511, almost always a mapping mistake.
    """
    number = as_number(value)
    scale = 1_000_000 if unit == "seconds" else 1_000
    whole = int(number) if -(10**18) < number < 10**18 else None
    if whole is not None and whole == number:
        micros: int | Decimal = whole * scale  # the common case: whole seconds or millis, pure int arithmetic
    else:
        micros = _WIDE.multiply(number, Decimal(scale)).to_integral_value(rounding=ROUND_HALF_EVEN, context=_WIDE)
    if not _MIN_US <= micros <= _MAX_US:
        raise Reject(f"epoch {unit} {number} is outside the years 1-9999 (seconds and milliseconds mixed up?)", value)
    return EPOCH + timedelta(microseconds=int(micros))


def lower(value: Any) -> str:
    return _need_str(value, "lower").lower()


def upper(value: Any) -> str:
    return _need_str(value, "upper").upper()


def trim(value: Any) -> str:
    """Remove leading and trailing whitespace."""
    return _need_str(value, "trim").strip()


def parse_number(value: Any) -> Decimal:
    """S holding a decimal literal → Decimal (exact); N passes through."""
    return as_number(value)


def parse_boolean(value: Any) -> bool:
    """BOOL passes; N 0/1; S true/false (also t/f, yes/no, y/n, on/off, 1/0, any case, as PostgreSQL)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal | int):
        if value == 0:
            return False
        if value == 1:
            return True
        raise Reject("only 0 and 1 parse as a boolean", value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Reject("does not parse as a boolean (true/false)", value)
    raise Reject(f"cannot parse {type_name(value)} as a boolean", value)


def scalar(value: Any) -> Any:
    """A YAML scalar as the codec sees values: numbers become Decimal (exactly as written), never float."""
    if isinstance(value, bool) or value is None or isinstance(value, str | Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return value


class ValueMap:
    """The ``map:`` transform: look a value up by kind (string, number, boolean), so 1 never matches True."""

    __slots__ = ("by_bool", "by_number", "by_str", "keys")

    def __init__(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        self.by_str: dict[str, Any] = {}
        self.by_number: dict[Decimal, Any] = {}
        self.by_bool: dict[bool, Any] = {}
        for raw_key, raw_target in pairs:
            key, target = scalar(raw_key), scalar(raw_target)
            if isinstance(key, bool):
                self.by_bool[key] = target
            elif isinstance(key, Decimal):
                self.by_number[key] = target
            else:
                self.by_str[str(key)] = target
                if _NUMBER.fullmatch(str(key)):  # YAML/JSON object keys are strings: "1" also maps N 1
                    self.by_number.setdefault(Decimal(str(key)), target)
        self.keys = ", ".join(repr(k) for k, _ in pairs)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, bool):
            table: dict[Any, Any] = self.by_bool
        elif isinstance(value, Decimal | int):
            table = self.by_number
        elif isinstance(value, str):
            table = self.by_str
        else:
            raise Reject(f"map applies to S, N or BOOL values, got {type_name(value)}", value)
        try:
            return table[value]
        except KeyError:
            raise Reject(f"value is not in the map (keys: {self.keys})", value) from None


def compile_transform(t: Transform) -> Step:
    """One Transform → a one-argument function; arguments are checked and precompiled here, once."""
    kind, arg = t.kind, t.arg
    if kind == "strip_prefix":
        prefix = str(arg)
        return lambda v: strip_prefix(v, prefix)
    if kind == "regex":
        pattern = re.compile(str(arg))
        return lambda v: regex(v, pattern)
    if kind == "epoch":
        if arg not in ("seconds", "millis"):
            raise ValueError(f"epoch takes seconds or millis, not {arg!r}")
        unit = str(arg)
        return lambda v: epoch(v, unit)
    if kind == "map":
        pairs = list(arg.items()) if isinstance(arg, dict) else [tuple(p) for p in arg]
        return ValueMap(pairs)
    if kind == "parse":
        if arg == "number":
            return parse_number
        if arg == "boolean":
            return parse_boolean
        raise ValueError(f"parse takes number or boolean, not {arg!r}")
    simple: dict[str, Step] = {"lower": lower, "upper": upper, "trim": trim}
    if kind in simple:
        return simple[kind]
    raise ValueError(f"unknown transform {kind!r}")


def compile_transforms(transforms: Sequence[Transform]) -> Step | None:
    """Chain a column's transforms into one function (None when there are none, so the hot path skips it).

    A step that yields None (``map`` to null) stops the chain: the value is NULL from there on.
    """
    steps = [compile_transform(t) for t in transforms]
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
            if value is None:
                return None
        return value

    return chain
