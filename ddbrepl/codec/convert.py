"""Decoded value → the Python value psycopg writes into a PostgreSQL column of a given SqlType, or `Reject`.

The rule: never let PostgreSQL round, truncate or reinterpret silently. Non-integral numbers are rejected
for integer columns (a numeric → bigint cast rounds 2.5 to 3), extra scale for numeric(p,s) (PostgreSQL
would round 1.005 to 1.01), over-long text unless ``on_overflow: truncate``, NUL characters (text and jsonb
refuse them).

Inputs are what `attrs.decode` and the transforms produce: str, Decimal, int, bool, bytes, dict, list,
frozenset, datetime/date. NULL and absent values never get here; the column logic in `rows` handles them.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import orjson

from ddbrepl.codec.reject import Reject, type_name
from ddbrepl.codec.transforms import as_number
from ddbrepl.mapping.model import INTEGER_TYPES, SqlType

ToSql = Callable[[Any], Any]

_WIDE = Context(prec=2000, Emax=999_999, Emin=-999_999, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
_REAL_MAX = 3.4028234663852886e38
_PG_WHOLE_DIGITS = 131072
_PG_SCALE = 16383
"""numeric's limits: digits before the decimal point, and after it."""
_FRACTION = re.compile(r"[.,](\d{7,})")
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


# --- numbers -----------------------------------------------------------------------------------------------


def _integer(bits: int) -> ToSql:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    low_d, high_d = Decimal(low), Decimal(high)
    name = {16: "smallint", 32: "integer", 64: "bigint"}[bits]

    def to_int(value: Any) -> int:
        if type(value) is int:
            number: Decimal | int = value
        else:
            number = as_number(value)
            if not number == number.to_integral_value():
                raise Reject(f"{number} is not an integer; {name} would round it (use numeric)", value)
        if not low_d <= number <= high_d:
            raise Reject(f"{number} is out of range for {name} ({low}..{high})", value)
        return int(number)

    return to_int


def _numeric(precision: int | None, scale: int | None) -> ToSql:
    if precision is None:

        def exact(value: Any) -> Decimal:
            number = as_number(value)
            exponent = number.as_tuple().exponent
            if number.adjusted() >= _PG_WHOLE_DIGITS or (isinstance(exponent, int) and exponent < -_PG_SCALE):
                raise Reject(f"{number} is beyond what PostgreSQL numeric can hold", value)
            return number

        return exact
    places = scale or 0
    quantum = Decimal(1).scaleb(-places)
    whole_digits = precision - places

    def bounded(value: Any) -> Decimal:
        number = as_number(value)
        if number and number.adjusted() >= whole_digits:
            raise Reject(
                f"{number} has more than {whole_digits} digits before the decimal point "
                f"for numeric({precision},{places})",
                value,
            )
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places and number.quantize(quantum, context=_WIDE) != number:
            raise Reject(
                f"{number} has more than {places} decimal places; numeric({precision},{places}) would round it",
                value,
            )
        return number

    return bounded


def _float(real: bool) -> ToSql:
    name = "real" if real else "double precision"

    def to_float(value: Any) -> float:
        number = as_number(value)
        result = float(number)
        if math.isinf(result) or (real and abs(result) > _REAL_MAX):
            raise Reject(f"{number} is out of range for {name}", value)
        if (result == 0.0 and number != 0) or (real and result != 0.0 and abs(result) < 1.401298464324817e-45):
            raise Reject(f"{number} is too close to zero for {name}", value)
        return result

    return to_float


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise Reject(
        f"boolean columns take BOOL, got {type_name(value)} (add `transform: [parse: boolean]` to read "
        "N 0/1 or S true/false)",
        value,
    )


# --- text -----------------------------------------------------------------------------------------------


def check_text(text: str, value: Any) -> str:
    """Reject text PostgreSQL cannot store: NUL characters, and lone surrogates that are not UTF-8."""
    if "\x00" in text:
        raise Reject(
            f"contains a NUL character (\\x00) at position {text.index(chr(0))}, which PostgreSQL text cannot store",
            value,
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject("is not valid Unicode (lone surrogate); PostgreSQL cannot store it", value) from None
    return text


def _text(length: int | None, truncate: bool) -> ToSql:
    def to_text(value: Any) -> str:
        if isinstance(value, str):
            text = value
        elif isinstance(value, Decimal | int) and not isinstance(value, bool):
            text = str(value)
        else:
            raise Reject(f"text columns take S (or N), got {type_name(value)}; use jsonb for maps and lists", value)
        check_text(text, value)
        if length is not None and len(text) > length:
            # PostgreSQL counts characters, as len() does. It would also drop excess trailing spaces silently;
            # under `error` they are refused like any other overflow, so what is stored is what was read.
            if truncate:
                return text[:length]
            raise Reject(
                f"is {len(text)} characters long, more than varchar({length}) allows "
                "(set on_overflow: truncate to cut it)",
                value,
            )
        return text

    return to_text


# --- time -----------------------------------------------------------------------------------------------


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 date or timestamp (``2015-12-21T17:42:34Z``, ``20150311T122706Z``, ``2024-01-02``,
    ``2024-01-02 10:00:00.1234567+05:30``); digits past the microsecond round half-even, as PostgreSQL does."""
    text = text.strip().upper()  # RFC 3339 allows "t" and "z"
    if text.endswith(("UTC", "GMT")):
        text = text[:-3].rstrip() + "+00:00"
    extra = timedelta(0)
    m = _FRACTION.search(text)
    if m is not None:
        micros = (Decimal("0." + m.group(1)) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)
        extra = timedelta(microseconds=int(micros))
        text = text[: m.start()] + text[m.end() :]
    try:
        return datetime.fromisoformat(text) + extra
    except (ValueError, OverflowError):
        raise Reject("is not an ISO-8601 date or timestamp", text) from None


def _as_datetime(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        check_text(value, value)
        return parse_iso(value)
    hint = " (add `transform: [epoch: seconds]` or `epoch: millis`)" if type_name(value) == "N" else ""
    raise Reject(f"{what} columns take an ISO-8601 S, got {type_name(value)}{hint}", value)


def _timestamptz(value: Any) -> datetime:
    """A timezone-less string is read as UTC, not in the session's TimeZone: one input, one instant."""
    moment = _as_datetime(value, "timestamptz")
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)


def _timestamp(value: Any) -> datetime:
    """An offset is applied, then dropped: UTC wall time (PostgreSQL itself would ignore the offset)."""
    moment = _as_datetime(value, "timestamp")
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _date(value: Any) -> date:
    """The calendar date as written; an epoch (aware UTC datetime) gives its UTC date."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    moment = _as_datetime(value, "date")
    if moment.tzinfo is not None and isinstance(value, datetime):
        moment = moment.astimezone(UTC)
    return moment.date()


# --- everything else -----------------------------------------------------------------------------------------


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            raise Reject("is not a UUID", value) from None
    raise Reject(f"uuid columns take S (or a 16-byte B), got {type_name(value)}", value)


def _bytea(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    raise Reject(f"bytea columns take B, got {type_name(value)}", value)


def _inet(
    value: Any,
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise Reject(f"inet columns take S, got {type_name(value)}", value)
    try:
        return ipaddress.ip_interface(value.strip()) if "/" in value else ipaddress.ip_address(value.strip())
    except ValueError:
        raise Reject("is not an IP address", value) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # exact digits as a JSON number; never NaN (decode refuses it)
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, int):
        return orjson.Fragment(str(value))  # beyond 64 bits, e.g. a stream sequence number
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(value: Any, *, sort_keys: bool = False) -> str:
    """JSON text with exact numbers: Decimal as a JSON number (never a float), sets sorted, B as base64."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode(
            "utf-8"
        )
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise Reject(f"cannot be written as JSON: {exc}", value) from None


def _json(binary: bool) -> ToSql:
    def to_json_column(value: Any) -> str:
        text = to_json(value, sort_keys=not binary)
        if binary and "\\u0000" in text and _NUL_ESCAPE.search(text):
            raise Reject("contains a NUL character (\\u0000), which jsonb cannot store", value)
        return text

    return to_json_column


def _array(element: ToSql, plain_text: bool = False) -> ToSql:
    def to_list(value: Any) -> list[Any]:
        if plain_text and value.__class__ is frozenset:
            try:
                joined = "".join(value)  # SS: all strings, checked for NUL and UTF-8 at once
            except TypeError:
                pass
            else:
                check_text(joined, value)
                return sorted(value)
        if isinstance(value, frozenset | set):
            members: list[Any] = sorted(value)  # a set has no order: sort so re-reads compare equal
        elif isinstance(value, list):
            members = value
        else:
            raise Reject(f"array columns take SS, NS, BS or L, got {type_name(value)}", value)
        out = []
        for member in members:
            if isinstance(member, list | dict | frozenset | set):
                raise Reject(f"array elements must be scalars, got {type_name(member)}", value)
            out.append(None if member is None else element(member))
        return out

    return to_list


def make_converter(sql_type: SqlType, on_overflow: str = "error") -> ToSql:
    """The function turning a decoded, non-NULL value into what psycopg writes to a ``sql_type`` column."""
    if sql_type.array:
        element = sql_type.element
        return _array(make_converter(element, on_overflow), element.base == "text")
    base = sql_type.base
    if base in INTEGER_TYPES:
        return _integer(INTEGER_TYPES[base])
    simple: dict[str, ToSql] = {
        "boolean": _boolean,
        "date": _date,
        "timestamp": _timestamp,
        "timestamptz": _timestamptz,
        "uuid": _uuid,
        "bytea": _bytea,
        "inet": _inet,
    }
    if base in simple:
        return simple[base]
    if base == "numeric":
        return _numeric(sql_type.precision, sql_type.scale)
    if base in ("real", "double precision"):
        return _float(base == "real")
    if base in ("text", "varchar"):
        return _text(sql_type.length, on_overflow == "truncate")
    if base in ("json", "jsonb"):
        return _json(base == "jsonb")
    raise ValueError(f"no conversion to PostgreSQL type {sql_type.render()!r}")
