"""Turn the Ion values of a DynamoDB ION export into DynamoDB JSON, exactly.

An ION export writes one top-level value a line (``$ion_1_0 {Item:{…}}``). The mapping back to DynamoDB JSON:
decimal and int → ``{"N": text}`` written exactly (no float, no rounding context); string → S; blob → ``{"B":
bytes}`` (the codec accepts bytes or base64 text); bool → BOOL; any null (``null``, ``null.struct``…) → NULL;
struct → M; list → L, unless annotated ``$dynamodb_SS`` / ``$dynamodb_NS`` / ``$dynamodb_BS``, which mark the
sets. DynamoDB never writes timestamps, symbols as values, clobs or s-expressions: those raise ``ValueError``,
which the file reader turns into a ``SourceError`` naming the file and line.

``amazon-ion`` is an optional extra (``pip install ddbrepl[ion]``): it is imported on first use only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from ddbrepl.errors import ConfigError

SET_TAGS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


@cache
def _ion() -> tuple[Callable[..., Any], Any, type]:
    """``simpleion.loads``, the ``IonType`` enum and the ``IonPyNull`` class, imported once, on first use."""
    try:
        from amazon.ion import simpleion
        from amazon.ion.core import IonType
        from amazon.ion.simple_types import IonPyNull
    except ImportError as exc:
        raise ConfigError(
            "this export is in ION format, which needs the amazon-ion package",
            hint="install the extra: pip install 'ddbrepl[ion]'",
        ) from exc
    return simpleion.loads, IonType, IonPyNull


def number_text(value: Decimal | int) -> str:
    """Write an Ion decimal or int as N text that decodes to exactly the same number.

    Whole numbers are written out positionally, as DynamoDB JSON writes them (``6d2`` → ``"600"``); others
    keep Python's exact ``str`` (``1.5``, ``1E-130``). Nothing goes through float.
    """
    if isinstance(value, int):
        return str(int(value))
    if not value.is_finite():
        raise ValueError(f"Ion decimal {value} is not a DynamoDB number")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return format(value, "f")
    return str(value)


def _annotation(value: Any) -> str | None:
    annotations = getattr(value, "ion_annotations", ())
    for token in annotations:
        text = getattr(token, "text", token)
        if text in SET_TAGS:
            return SET_TAGS[text]
    return None


def to_attribute(value: Any) -> dict[str, Any]:
    """Convert one Ion value (as ``simpleion.loads`` returns it) into a DynamoDB JSON attribute value."""
    _, ion_type, ion_null = _ion()
    kind = getattr(value, "ion_type", None)
    if kind is None:
        return _plain(value)
    if kind is ion_type.NULL or isinstance(value, ion_null):  # typed nulls (null.struct) too
        return {"NULL": True}
    if kind is ion_type.STRING:
        return {"S": str(value)}
    if kind is ion_type.DECIMAL:
        return {"N": number_text(Decimal(value))}
    if kind is ion_type.INT:
        return {"N": str(int(value))}
    if kind is ion_type.BOOL:
        return {"BOOL": bool(value)}
    if kind is ion_type.BLOB:
        return {"B": bytes(value)}
    if kind is ion_type.STRUCT:
        return {"M": to_item(value)}
    if kind is ion_type.LIST:
        tag = _annotation(value)
        if tag is None:
            return {"L": [to_attribute(v) for v in value]}
        return {tag: [_set_element(tag, v) for v in value]}
    raise ValueError(f"Ion {kind.name.lower()} value {value!r} cannot come from DynamoDB")


def _set_element(tag: str, value: Any) -> Any:
    converted = to_attribute(value)
    expected = tag[0]  # SS -> S, NS -> N, BS -> B
    if expected not in converted:
        raise ValueError(f"{tag} set holds a {next(iter(converted))} element: {value!r}")
    return converted[expected]


def _plain(value: Any) -> dict[str, Any]:
    """Values without an Ion type: what a caller may hand over from plain Python (tests, other readers)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, Decimal | int):
        return {"N": number_text(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": to_item(value)}
    if isinstance(value, list):
        return {"L": [to_attribute(v) for v in value]}
    raise ValueError(f"{type(value).__name__} value {value!r} cannot come from DynamoDB")


def to_item(struct: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an Ion struct (an item, image or key set) into DynamoDB JSON: name → attribute value."""
    return {str(name): to_attribute(value) for name, value in struct.items()}


def parse_line(line: bytes) -> list[Any]:
    """Parse one line of an ION export into its top-level values (the ``$ion_1_0`` marker yields none)."""
    loads, _, _ = _ion()
    try:
        values: list[Any] = loads(line, single_value=False)
    except Exception as exc:  # amazon-ion raises IonException, ValueError or errors from its C reader
        raise ValueError(f"not valid Ion text: {exc}") from exc
    return values
