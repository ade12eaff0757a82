"""Decode DynamoDB JSON attribute values into exact Python values.

``{"N": "1.50"}`` → ``Decimal("1.50")`` (built from the text, so exact whatever its length: no 38-digit
context that raises ``decimal.Rounded`` on 1e100 written out in full, boto/boto3#2500, and never a float);
S → str; B → bytes, from bytes (boto3 client) or a base64 str (exports, Lambda events, raw JSON); BOOL → bool;
NULL → None; M → dict; L → list; SS/NS/BS → frozenset. Malformed values raise `Reject`.

Faster than boto3's ``TypeDeserializer`` (see bench/codec.py): one dict probe per common tag, no method
lookup by name, and no decimal context.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ddbrepl.codec.reject import Reject, excerpt


def number(text: Any) -> Decimal:
    """Decode an N value exactly; reject anything DynamoDB could not have stored (NaN, Infinity, junk)."""
    if type(text) is not str:
        raise Reject(f"N value must be a string of digits, got {type(text).__name__}", text)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Reject("N value is not a number", text) from None
    if not value.is_finite() or "_" in text:
        raise Reject("N value is not a finite decimal number", text)
    if value and not -130 <= value.adjusted() <= 125:
        raise Reject("N value is outside DynamoDB's range (1E-130 to 9.99…E+125 in magnitude)", text)
    return value


def binary(raw: Any) -> bytes:
    """Decode a B value: bytes pass through (boto3 client); a str is base64 (exports, Lambda, raw JSON)."""
    if type(raw) is bytes:
        return raw
    if isinstance(raw, str):
        try:
            return binascii.a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            raise Reject("B value is not valid base64", raw) from None
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    inner = getattr(raw, "value", None)  # boto3.dynamodb.types.Binary, without importing boto3 here
    if isinstance(inner, bytes | bytearray):
        return bytes(inner)
    raise Reject(f"B value must be bytes or a base64 string, got {type(raw).__name__}", raw)


def _string(raw: Any) -> str:
    if type(raw) is not str:
        raise Reject(f"S value must be a string, got {type(raw).__name__}", raw)
    return raw


def _boolean(raw: Any) -> bool:
    if type(raw) is not bool:
        raise Reject(f"BOOL value must be true or false, got {raw!r}", raw)
    return raw


def _null(raw: Any) -> None:
    return None


def _map(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise Reject(f"M value must be an object, got {type(raw).__name__}", raw)
    out: dict[str, Any] = {}
    for name, av in raw.items():
        # S and N inline: a function call per nested value is most of the cost of decoding a document.
        if len(av) == 1:
            value = av.get("S")
            if value.__class__ is str:
                out[name] = value
                continue
            value = av.get("N")
            if value is not None:
                out[name] = number(value)
                continue
        out[name] = decode(av)
    return out


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list | tuple):
        raise Reject(f"L value must be an array, got {type(raw).__name__}", raw)
    out: list[Any] = []
    for av in raw:
        if len(av) == 1:
            value = av.get("S")
            if value.__class__ is str:
                out.append(value)
                continue
        out.append(decode(av))
    return out


def _string_set(raw: Any) -> frozenset[str]:
    members = frozenset(_elements(raw, "SS"))
    try:
        "".join(members)  # the cheapest all-strings check: join refuses anything else
    except TypeError:
        raise Reject("SS members must be strings", raw) from None
    return members


def _number_set(raw: Any) -> frozenset[Decimal]:
    return frozenset(map(number, _elements(raw, "NS")))


def _binary_set(raw: Any) -> frozenset[bytes]:
    return frozenset(map(binary, _elements(raw, "BS")))


def _elements(raw: Any, tag: str) -> list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]:
    if raw.__class__ is list:
        return raw
    if not isinstance(raw, list | tuple | set | frozenset):
        raise Reject(f"{tag} value must be an array, got {type(raw).__name__}", raw)
    return raw


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "S": _string,
    "N": number,
    "B": binary,
    "BOOL": _boolean,
    "NULL": _null,
    "M": _map,
    "L": _list,
    "SS": _string_set,
    "NS": _number_set,
    "BS": _binary_set,
}


def decode(av: Mapping[str, Any]) -> Any:
    """Decode one attribute value, e.g. ``{"S": "x"}`` → ``"x"``; nested M/L/sets are decoded fully."""
    # The two commonest tags are probed first; the rest go through the table.
    if len(av) == 1:
        raw = av.get("S")
        if raw is not None and type(raw) is str:
            return raw
        raw = av.get("N")
        if raw is not None:
            return number(raw)
    elif not isinstance(av, Mapping):
        raise Reject(f'an attribute value is an object like {{"S": …}}, got {type(av).__name__}', av)
    else:
        raise Reject(f"an attribute value has exactly one type tag, got {sorted(av)!r}", dict(av))
    for tag, raw in av.items():
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise Reject(f"unknown DynamoDB type tag {tag!r}", dict(av))
        return decoder(raw)
    raise AssertionError("unreachable")  # pragma: no cover


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Decode a whole item, image or key set (attribute name → attribute value)."""
    return {name: decode(av) for name, av in item.items()}


def describe(av: Any) -> str:
    """A storable excerpt of a raw attribute value (for dead letters about undecodable input)."""
    return excerpt(av)
