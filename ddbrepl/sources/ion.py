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
def _ion() -> tuple[Callable[..., Any], Any, type, Any]:
    """``simpleion.loads``, ``IonType``, ``IonPyNull`` and the value model, imported once, on first use.

    The value model asks amazon-ion for plain Python values (str, Decimal, int, bool, bytes, list, dict, None)
    wherever that loses nothing: only annotated lists (the sets), typed nulls and types DynamoDB never writes
    keep their IonPy wrapper. That halves the cost of a line compared with IonPy objects everywhere.
    """
    try:
        from amazon.ion import simpleion
        from amazon.ion.core import IonType
        from amazon.ion.simple_types import IonPyNull
    except ImportError as exc:
        raise ConfigError(
            "this export is in ION format, which needs the amazon-ion package",
            hint="install the extra: pip install 'ddbrepl[ion]'",
        ) from exc
    model = simpleion.IonPyValueModel.MAY_BE_BARE | simpleion.IonPyValueModel.STRUCT_AS_STD_DICT
    return simpleion.loads, IonType, IonPyNull, model


def number_text(value: Decimal | int) -> str:
    """Write an Ion decimal or int as N text that decodes to exactly the same number.

    Whole numbers are written out positionally, as DynamoDB JSON writes them (``6d2`` → ``"600"``); others
    keep Python's exact ``str`` (``1.5``, ``1E-130``). Nothing goes through float.
    """
    if isinstance(value, int):
        return str(int(value))
    if not value.is_finite():
        raise ValueError(f"Ion decimal {value} is not a DynamoDB number")
    text = str(value)
    if "E+" in text:  # a whole number with an exponent, such as 6d2 → 6E+2
        return format(value, "f")
    return text


def _annotation(value: Any) -> str | None:
    annotations = getattr(value, "ion_annotations", ())
    for token in annotations:
        text = getattr(token, "text", token)
        if text in SET_TAGS:
            return SET_TAGS[text]
    return None


def to_attribute(value: Any) -> dict[str, Any]:
    """Convert one Ion value (as ``simpleion.loads`` returns it) into a DynamoDB JSON attribute value."""
    kind = type(value)  # exact types first: the bare values amazon-ion hands out for most of an item
    if kind is str:
        return {"S": value}
    if kind is Decimal:
        return {"N": number_text(value)}
    if kind is dict:
        return {"M": to_item(value)}
    if kind is list:
        return {"L": [to_attribute(v) for v in value]}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    if kind is bytes:
        return {"B": value}
    if value is None:
        return {"NULL": True}
    return _wrapped(value)


def _wrapped(value: Any) -> dict[str, Any]:
    """IonPy values: annotated lists (the sets), typed nulls, and the types DynamoDB never writes."""
    _, ion_type, ion_null, _ = _ion()
    kind = getattr(value, "ion_type", None)
    if kind is None:
        raise ValueError(f"Ion {type(value).__name__.lower()} value {value!r} cannot come from DynamoDB")
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


def to_item(struct: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an Ion struct (an item, image or key set) into DynamoDB JSON: name → attribute value."""
    return {name: to_attribute(value) for name, value in struct.items()}


def parse(text: bytes) -> list[Any]:
    """Parse Ion text — one line of an ION export, or many joined — into its top-level values.

    A ``$ion_1_0`` marker yields no value. Parsing a block of lines in one call saves most of amazon-ion's
    per-call overhead; the caller re-parses line by line only to locate an error.
    """
    loads, _, _, model = _ion()
    try:
        values: list[Any] = loads(text, single_value=False, value_model=model)
    except Exception as exc:  # amazon-ion raises IonException, ValueError or errors from its C reader
        raise ValueError(f"not valid Ion text: {exc}") from exc
    return values
