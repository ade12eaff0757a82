"""The one exception the codec raises inside itself: a value that cannot become what the mapping asks for.

It never leaves the codec: `rows.Converter` catches it and returns a `records.Rejected` (a dead-letter row).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ddbrepl.errors import DdbreplError

EXCERPT_CHARS = 200


class Reject(DdbreplError):
    """This value does not fit; ``reason`` says why in words meant for the operator reading dead letters."""

    def __init__(self, reason: str, value: Any = None) -> None:
        self.reason = reason
        self.value = value
        super().__init__(reason)


def printable(text: str) -> str:
    """Make ``text`` storable in a PostgreSQL text column: NUL and lone surrogates become escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, storable rendering of a value for a dead-letter row: at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, Decimal | int) else repr(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]  # printable() may lengthen; keep the work bounded on huge values
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def type_name(value: Any) -> str:
    """The DynamoDB type tag a decoded value came from, for messages: S, N, B, BOOL, NULL, M, L, SS…"""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, str):
        return "S"
    if isinstance(value, bytes | bytearray):
        return "B"
    if isinstance(value, dict):
        return "M"
    if isinstance(value, list):
        return "L"
    if isinstance(value, frozenset | set):
        first = next(iter(value), "")
        return "NS" if not isinstance(first, str | bytes) else ("SS" if isinstance(first, str) else "BS")
    if isinstance(value, int | Decimal):
        return "N"
    return type(value).__name__
