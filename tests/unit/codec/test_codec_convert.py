"""Conversion to each PostgreSQL type: exact, range-checked, and never silently rounded."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ddbrepl.codec.convert import make_converter, parse_iso, to_json
from ddbrepl.codec.reject import Reject
from ddbrepl.mapping.types import parse_type


def conv(sql_type: str, value: Any, on_overflow: str = "error") -> Any:
    return make_converter(parse_type(sql_type), on_overflow)(value)


def rejects(sql_type: str, value: Any, match: str, on_overflow: str = "error") -> None:
    with pytest.raises(Reject, match=match):
        conv(sql_type, value, on_overflow)


# --- integers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql_type", "value", "expected"),
    [
        ("smallint", Decimal("32767"), 32767),
        ("smallint", Decimal("-32768"), -32768),
        ("integer", Decimal("2147483647"), 2147483647),
        ("bigint", Decimal("9223372036854775807"), 9223372036854775807),
        ("bigint", Decimal("-9223372036854775808"), -9223372036854775808),
        ("bigint", Decimal("-0"), 0),
        ("bigint", Decimal("1.000"), 1),  # integral though written with a scale
        ("bigint", Decimal("1E+3"), 1000),
        ("bigint", "0042", 42),  # the digits a regex kept
        ("bigint", 12, 12),  # $event.sequence and $index arrive as int
    ],
)
def test_integers(sql_type: str, value: Any, expected: int) -> None:
    result = conv(sql_type, value)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(
    ("sql_type", "value", "match"),
    [
        ("smallint", Decimal("32768"), "out of range for smallint"),
        ("integer", Decimal("-2147483649"), "out of range for integer"),
        ("bigint", Decimal("9223372036854775808"), "out of range for bigint"),
        ("bigint", Decimal("12345678901234567890123456789012345678"), "out of range"),
        ("bigint", Decimal("1E+125"), "out of range"),
        ("bigint", Decimal("1.5"), "not an integer; bigint would round"),
        ("bigint", Decimal("2.5"), "not an integer"),
        ("bigint", Decimal("1E-130"), "not an integer"),
        ("bigint", True, "expected a number"),
        ("bigint", "12a", "expected a number"),
        ("integer", 2**40, "out of range"),
    ],
)
def test_integer_rejections(sql_type: str, value: Any, match: str) -> None:
    rejects(sql_type, value, match)


# --- numeric ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123456789012345678",
        "1E+125",
        "1E-130",
        "-0",
        "1.50",
        "1" + "0" * 100,
        "9.9999999999999999999999999999999999999E+125",
    ],
)
def test_unconstrained_numeric_is_exact(text: str) -> None:
    result = conv("numeric", Decimal(text))
    assert result == Decimal(text) and str(result) == str(Decimal(text))


@pytest.mark.parametrize(
    ("sql_type", "value"),
    [
        ("numeric(10,2)", "12345678.91"),
        ("numeric(10,2)", "1.5"),
        ("numeric(10,2)", "1.500"),
        ("numeric(3,1)", "-99.9"),
        ("numeric(5)", "12345"),
        ("numeric(4,4)", "0.1234"),
        ("numeric(2,0)", "1E+1"),
        ("numeric(10,2)", "0E-10"),
        ("numeric(38,0)", "12345678901234567890123456789012345678"),
    ],
)
def test_bounded_numeric_accepts_what_fits(sql_type: str, value: str) -> None:
    assert conv(sql_type, Decimal(value)) == Decimal(value)


@pytest.mark.parametrize(
    ("sql_type", "value", "match"),
    [
        ("numeric(10,2)", "1.005", "more than 2 decimal places"),
        ("numeric(10,2)", "123456789", "more than 8 digits"),
        ("numeric(3,1)", "100", "more than 2 digits"),
        ("numeric(5)", "0.5", "more than 0 decimal places"),
        ("numeric(4,4)", "1", "more than 0 digits"),
        ("numeric(10,2)", "1E-130", "decimal places"),
        ("numeric(38,0)", "1E+125", "digits before"),
    ],
)
def test_bounded_numeric_rejects_rounding_and_overflow(sql_type: str, value: str, match: str) -> None:
    rejects(sql_type, Decimal(value), match)


# --- floating point, boolean ------------------------------------------------------------------------------------


def test_floats() -> None:
    assert conv("double precision", Decimal("1.5")) == 1.5
    assert conv("double precision", Decimal("1E+125")) == 1e125
    assert conv("double precision", Decimal("1E-130")) == 1e-130
    assert conv("real", Decimal("3.25")) == 3.25
    rejects("real", Decimal("1E+125"), "out of range for real")
    rejects("real", Decimal("1E-130"), "too close to zero for real")
    rejects("double precision", "1e400", "out of range")
    rejects("double precision", "1e-400", "too close to zero")
    rejects("double precision", "x", "expected a number")


def test_boolean_takes_bool_only() -> None:
    assert conv("boolean", True) is True
    assert conv("boolean", False) is False
    rejects("boolean", Decimal(1), r"parse: boolean")
    rejects("boolean", "true", r"parse: boolean")


# --- text -------------------------------------------------------------------------------------------------------


def test_text() -> None:
    assert conv("text", "") == ""
    assert conv("text", "héllo ☃ 𝄞") == "héllo ☃ 𝄞"
    assert conv("text", Decimal("1E+2")) == "1E+2"
    assert conv("text", Decimal("12345678901234567890123456789012345678")) == "12345678901234567890123456789012345678"
    rejects("text", {"a": 1}, "use jsonb")
    rejects("text", True, "text columns take S")


def test_nul_in_text_is_a_rejection_with_its_position() -> None:
    rejects("text", "ab\x00c", r"NUL character \(\\x00\) at position 2")
    rejects("varchar(10)", "\x00", "NUL")
    rejects("text[]", frozenset({"a", "b\x00"}), "NUL")


def test_lone_surrogate_is_a_rejection() -> None:
    rejects("text", "a\ud800b", "lone surrogate")


def test_varchar_counts_characters_like_postgresql() -> None:
    assert conv("varchar(3)", "☃☃☃") == "☃☃☃"  # 9 UTF-8 bytes, 3 characters
    assert conv("varchar(3)", "𝄞𝄞𝄞") == "𝄞𝄞𝄞"
    rejects("varchar(3)", "abcd", "is 4 characters long, more than varchar\\(3\\)")
    assert conv("varchar(3)", "abcd", "truncate") == "abc"
    assert conv("varchar(3)", "☃☃☃☃", "truncate") == "☃☃☃"
    rejects("varchar(3)", "ab   ", "is 5 characters long")  # PostgreSQL would drop the spaces silently
    assert conv("varchar(3)", "ab   ", "truncate") == "ab "


# --- time -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-12-21T17:42:34Z", datetime(2015, 12, 21, 17, 42, 34, tzinfo=UTC)),
        ("20150311T122706Z", datetime(2015, 3, 11, 12, 27, 6, tzinfo=UTC)),
        ("2015-03-11 12:27:06", datetime(2015, 3, 11, 12, 27, 6, tzinfo=UTC)),  # timezone-less: UTC
        ("2015-03-11T12:27:06.5+05:30", datetime(2015, 3, 11, 6, 57, 6, 500000, tzinfo=UTC)),
        ("2015-03-11T12:27:06.1234567Z", datetime(2015, 3, 11, 12, 27, 6, 123457, tzinfo=UTC)),
        ("2015-03-11T12:27:06.9999995Z", datetime(2015, 3, 11, 12, 27, 7, tzinfo=UTC)),
        ("2015-03-11", datetime(2015, 3, 11, tzinfo=UTC)),
        (" 2015-03-11T12:27 ", datetime(2015, 3, 11, 12, 27, tzinfo=UTC)),
        ("2015-03-11t12:27:06z", datetime(2015, 3, 11, 12, 27, 6, tzinfo=UTC)),
        ("2015-03-11 12:27:06 UTC", datetime(2015, 3, 11, 12, 27, 6, tzinfo=UTC)),
        ("2015-03-11 12:27:06+05", datetime(2015, 3, 11, 7, 27, 6, tzinfo=UTC)),
        ("2015-03-11T12:27:06,5Z", datetime(2015, 3, 11, 12, 27, 6, 500000, tzinfo=UTC)),
    ],
)
def test_timestamptz_from_iso_strings(text: str, expected: datetime) -> None:
    result = conv("timestamptz", text)
    assert result == expected and result.tzinfo is UTC


def test_timestamp_without_zone_is_utc_wall_time() -> None:
    assert conv("timestamp", "2015-03-11T12:27:06+02:00") == datetime(2015, 3, 11, 10, 27, 6)
    assert conv("timestamp", "2015-03-11T12:27:06") == datetime(2015, 3, 11, 12, 27, 6)
    aware = datetime(2020, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert conv("timestamp", aware) == datetime(2020, 1, 1, 0, 0)


def test_date() -> None:
    assert conv("date", "2024-02-29") == date(2024, 2, 29)
    assert conv("date", "20240229") == date(2024, 2, 29)
    assert conv("date", "2024-02-29T23:30:00-05:00") == date(2024, 2, 29)  # the date as written
    assert conv("date", datetime(2024, 2, 29, 23, 30, tzinfo=UTC)) == date(2024, 2, 29)
    assert conv("date", date(2024, 1, 1)) == date(2024, 1, 1)
    assert conv("timestamptz", date(2024, 1, 1)) == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2024-02-30", "yesterday", "now", "infinity", "2024-13-01", "", "10000-01-01"])
def test_bad_timestamps_are_rejected(text: str) -> None:
    rejects("timestamptz", text, "not an ISO-8601")


def test_epoch_numbers_need_the_transform() -> None:
    rejects("timestamptz", Decimal(1700000000), r"epoch: seconds")
    rejects("date", True, "take an ISO-8601 S")


def test_parse_iso_keeps_offsets() -> None:
    assert parse_iso("2015-03-11T12:27:06-0700").utcoffset() == timedelta(hours=-7)


# --- uuid, bytea, inet ------------------------------------------------------------------------------------------


def test_uuid() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert conv("uuid", "12345678-1234-5678-1234-567812345678") == u
    assert conv("uuid", "{12345678123456781234567812345678}") == u
    assert conv("uuid", u.bytes) == u
    rejects("uuid", "not-a-uuid", "not a UUID")
    rejects("uuid", Decimal(1), "uuid columns take S")


def test_bytea() -> None:
    assert conv("bytea", b"") == b""
    assert conv("bytea", b"\x00\xff") == b"\x00\xff"
    rejects("bytea", "AAE=", "bytea columns take B")


def test_inet() -> None:
    assert conv("inet", "192.168.0.1") == ipaddress.ip_address("192.168.0.1")
    assert conv("inet", "10.0.0.0/8") == ipaddress.ip_interface("10.0.0.0/8")
    assert conv("inet", "::1") == ipaddress.ip_address("::1")
    rejects("inet", "300.1.1.1", "not an IP address")


# --- json ------------------------------------------------------------------------------------------------------


def test_jsonb_numbers_are_exact_json_numbers() -> None:
    value = {
        "a": Decimal("12345678901234567890123456789012345678"),
        "b": Decimal("1E+125"),
        "c": Decimal("1E-130"),
        "d": Decimal("-0"),
        "e": Decimal("1.50"),
        "f": Decimal("1" + "0" * 100),
    }
    text = conv("jsonb", value)
    assert text == (
        '{"a":12345678901234567890123456789012345678,"b":1E+125,"c":1E-130,"d":-0,"e":1.50,"f":1' + "0" * 100 + "}"
    )
    assert json.loads(text, parse_float=Decimal, parse_int=Decimal) == value


def test_jsonb_sets_sorted_binary_base64() -> None:
    value = {
        "ss": frozenset({"b", "a", "é"}),
        "ns": frozenset({Decimal(10), Decimal("-1.5"), Decimal(2)}),
        "bs": frozenset({b"\x02", b"\x01"}),
        "b": b"\x00\x01",
        "l": [None, True, ""],
    }
    assert json.loads(conv("jsonb", value)) == {
        "ss": ["a", "b", "é"],
        "ns": [-1.5, 2, 10],
        "bs": ["AQ==", "Ag=="],
        "b": "AAE=",
        "l": [None, True, ""],
    }


def test_jsonb_scalars_and_big_ints() -> None:
    assert conv("jsonb", "x") == '"x"'
    assert conv("jsonb", True) == "true"
    assert conv("jsonb", 10**30) == "1" + "0" * 30
    assert conv("json", {"b": Decimal(1), "a": Decimal(2)}) == '{"a":2,"b":1}'  # json keeps text: sort keys


def test_nul_in_jsonb_is_rejected_but_an_escaped_backslash_is_not() -> None:
    rejects("jsonb", {"a": "x\x00"}, r"\\u0000")
    assert conv("jsonb", {"a": "\\u0000"}) == '{"a":"\\\\u0000"}'  # a literal backslash-u: fine
    assert conv("json", {"a": "x\x00"}) == '{"a":"x\\u0000"}'  # json (text) stores the escape


def test_to_json_rejects_lone_surrogates() -> None:
    with pytest.raises(Reject, match="cannot be written as JSON"):
        to_json({"a": "\ud800"})


# --- arrays ----------------------------------------------------------------------------------------------------


def test_arrays_from_sets_are_sorted_and_lists_keep_order() -> None:
    assert conv("text[]", frozenset({"b", "a", ""})) == ["", "a", "b"]
    assert conv("numeric[]", frozenset({Decimal(10), Decimal("-1.5"), Decimal("1E+125")})) == [
        Decimal("-1.5"),
        Decimal(10),
        Decimal("1E+125"),
    ]
    assert conv("bigint[]", frozenset({Decimal(3), Decimal(1)})) == [1, 3]
    assert conv("text[]", ["z", None, "a"]) == ["z", None, "a"]
    assert conv("bigint[]", []) == []
    rejects("bigint[]", frozenset({Decimal("1.5")}), "not an integer")
    rejects("text[]", "a", "array columns take")
    rejects("text[]", [["a"]], "array elements must be scalars")


def test_unknown_type_fails_at_compile_time() -> None:
    from ddbrepl.mapping.model import SqlType

    with pytest.raises(ValueError, match="no conversion"):
        make_converter(SqlType("money"))
