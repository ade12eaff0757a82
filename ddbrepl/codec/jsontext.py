"""DynamoDB JSON → JSON text in one pass, without decoding to exact Python values first (the ``$item`` fast path).

`convert.to_json(attrs.decode(av))` is the reference: this module must return the very same text, byte for byte,
or decline (None) so that the caller takes that reference path, which then produces the identical text or the
identical `Reject`. What it saves is the Decimal per N and the ``default=`` callback per number: a plain N whose
text is already what ``str(Decimal(text))`` would print goes into the output as it is (an ``orjson.Fragment``).

Fast, byte-identical rules (anything else declines or takes the exact path for that one value):
  S → the str (orjson escapes it; a lone surrogate makes orjson fail → decline);
  N → the text itself when it matches `_CANONICAL` (plain notation, no leading zeros, ≤ 38 integer digits,
      at most 5 zeros after "0."), else ``str(number(text))`` exactly as the reference does;
  BOOL/NULL → literals (a BOOL that is not a bool declines); M → object in the raw key order (the caller sorts
      for ``json`` columns as the reference does); L → array;
  B → base64 re-encoded from its strict decoding (so non-canonical padding prints as the reference prints it);
  SS/NS/BS → sorted, duplicates dropped, exactly as the reference sorts the decoded frozenset.
"""

from __future__ import annotations

import re
from base64 import b64encode
from binascii import a2b_base64
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ddbrepl.codec.attrs import binary, number

_CANONICAL = re.compile(r"-?(?:[1-9]\d{0,37}(?:\.\d+)?|0(?:\.(?:0{0,5}[1-9]\d*|0{1,6}))?)", re.ASCII).fullmatch
"""N texts that ``str(Decimal(text))`` prints unchanged and that DynamoDB's range admits (adjusted -6..37)."""
_Fragment = orjson.Fragment


class _Decline(Exception):
    """The fast path does not handle this value; the caller takes the exact reference path."""


def _number(text: Any) -> Any:
    if text.__class__ is str and _CANONICAL(text) is not None:
        return _Fragment(text)
    return _Fragment(str(number(text)))  # the reference's own text; a Reject here declines the whole value


def _object(raw: Mapping[str, Any]) -> dict[str, Any]:
    if raw.__class__ is not dict:
        raise _Decline
    out: dict[str, Any] = {}
    for name, av in raw.items():
        ((tag, value),) = av.items()  # exactly one tag, or ValueError: decline
        if tag == "S":
            if value.__class__ is not str:
                raise _Decline
            out[name] = value
        elif tag == "N":
            out[name] = _number(value)
        else:
            out[name] = _OTHER[tag](value)  # KeyError for an unknown tag: decline
    return out


def _array(raw: Any) -> list[Any]:
    if raw.__class__ is not list:
        raise _Decline
    out: list[Any] = []
    for av in raw:
        ((tag, value),) = av.items()
        if tag == "S":
            if value.__class__ is not str:
                raise _Decline
            out.append(value)
        elif tag == "N":
            out.append(_number(value))
        else:
            out.append(_OTHER[tag](value))
    return out


def _boolean(raw: Any) -> bool:
    if raw is True or raw is False:
        return raw
    raise _Decline


def _null(raw: Any) -> None:
    return None


def _base64(raw: Any) -> str:
    if raw.__class__ is str:
        raw = a2b_base64(raw, strict_mode=True)
    elif raw.__class__ is not bytes:
        raw = binary(raw)
    return b64encode(raw).decode("ascii")


def _string_set(raw: Any) -> list[str]:
    if raw.__class__ is not list:
        raise _Decline
    "".join(raw)  # all strings, or TypeError: decline
    return sorted(set(raw))


def _number_set(raw: Any) -> list[Any]:
    if raw.__class__ is not list:
        raise _Decline
    # Equal numbers of different spelling (1 and 1.0) collapse as the reference's frozenset collapses them.
    return [_Fragment(str(value)) for value in sorted(frozenset(map(number, raw)))]


def _binary_set(raw: Any) -> list[str]:
    if raw.__class__ is not list:
        raise _Decline
    return [b64encode(value).decode("ascii") for value in sorted(frozenset(map(binary, raw)))]


_OTHER: dict[str, Callable[[Any], Any]] = {
    "M": _object,
    "L": _array,
    "BOOL": _boolean,
    "NULL": _null,
    "B": _base64,
    "SS": _string_set,
    "NS": _number_set,
    "BS": _binary_set,
}


def _value(av: Mapping[str, Any]) -> Any:
    ((tag, value),) = av.items()
    if tag == "S":
        if value.__class__ is not str:
            raise _Decline
        return value
    if tag == "N":
        return _number(value)
    return _OTHER[tag](value)


def item_json(image: Mapping[str, Any], *, sort_keys: bool = False) -> str | None:
    """JSON text of a whole item (attribute name → attribute value), as ``to_json(decode_item(image))`` gives it;
    None when the fast path declines (malformed or unusual input: the caller must take the reference path)."""
    try:
        tree = _object(image)
        return orjson.dumps(tree, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode("utf-8")
    except Exception:  # whatever went wrong, the reference path says it exactly (or succeeds identically)
        return None


def value_json(av: Mapping[str, Any], *, sort_keys: bool = False) -> str | None:
    """JSON text of one attribute value, as ``to_json(decode(av))`` gives it; None when the fast path declines."""
    try:
        tree = _value(av)
        return orjson.dumps(tree, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode("utf-8")
    except Exception:
        return None
