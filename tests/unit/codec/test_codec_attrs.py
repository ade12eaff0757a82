"""attrs.decode: every DynamoDB type, exact numbers, both binary encodings, and agreement with boto3."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import given, settings

from ddbrepl.codec.attrs import decode, decode_item
from ddbrepl.codec.reject import Reject
from tests.unit.codec.strategies import items, serialize


@pytest.mark.parametrize(
    ("av", "expected"),
    [
        ({"S": "héllo ☃ 𝄞"}, "héllo ☃ 𝄞"),
        ({"S": ""}, ""),
        ({"N": "1.50"}, Decimal("1.50")),
        ({"BOOL": True}, True),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"B": b""}, b""),
        ({"B": b"\x00\xff"}, b"\x00\xff"),
        ({"B": ""}, b""),
        ({"B": "AP8="}, b"\x00\xff"),
        ({"M": {}}, {}),
        ({"L": []}, []),
        (
            {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}, {"M": {"b": {"NULL": True}}}]}}},
            {"a": [Decimal(1), "x", {"b": None}]},
        ),
        ({"SS": ["b", "a", ""]}, frozenset({"a", "b", ""})),
        ({"NS": ["1", "2.5", "-0"]}, frozenset({Decimal(1), Decimal("2.5"), Decimal(0)})),
        ({"BS": ["AA==", "AQ=="]}, frozenset({b"\x00", b"\x01"})),
        ({"BS": [b"\x00", b"\x01"]}, frozenset({b"\x00", b"\x01"})),
    ],
)
def test_decodes_every_type(av: dict[str, Any], expected: Any) -> None:
    assert decode(av) == expected
    assert type(decode(av)) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123456789012345678",  # 38 digits
        "-0.12345678901234567890123456789012345678",
        "9.9999999999999999999999999999999999999E+125",
        "1E+125",
        "1E-130",
        "-1E-130",
        "1" + "0" * 100,  # 1e100 as DynamoDB returns it: boto3's TypeDeserializer raises decimal.Rounded
        "1" + "0" * 125,
    ],
)
def test_numbers_are_exact_at_the_limits(text: str) -> None:
    value = decode({"N": text})
    assert value == Decimal(text)
    assert str(value) == str(Decimal(text))  # the digits, exponent and trailing zeros as written


def test_typedeserializer_rounds_where_we_do_not() -> None:
    import decimal

    with pytest.raises(decimal.Rounded):
        TypeDeserializer().deserialize({"N": "1" + "0" * 100})
    assert decode({"N": "1" + "0" * 100}) == 10**100


def test_negative_zero_keeps_its_sign_and_equals_zero() -> None:
    value = decode({"N": "-0"})
    assert value == 0
    assert value.is_signed()


@pytest.mark.parametrize(
    ("av", "reason"),
    [
        ({"N": "NaN"}, "not a finite"),
        ({"N": "Infinity"}, "not a finite"),
        ({"N": "1_000"}, "not a finite"),
        ({"N": "abc"}, "not a number"),
        ({"N": "1E+126"}, "outside DynamoDB's range"),
        ({"N": "-9.9E-131"}, "outside DynamoDB's range"),
        ({"N": 5}, "must be a string"),
        ({"B": "not base64!"}, "not valid base64"),
        ({"B": 7}, "bytes or a base64"),
        ({"S": 5}, "must be a string"),
        ({"BOOL": "true"}, "true or false"),
        ({"X": "1"}, "unknown DynamoDB type tag"),
        ({"S": "a", "N": "1"}, "exactly one type tag"),
        ({}, "exactly one type tag"),
        ({"M": ["a"]}, "must be an object"),
        ({"L": {"a": 1}}, "must be an array"),
        ({"SS": "abc"}, "must be an array"),
    ],
)
def test_malformed_values_are_rejected_not_crashed(av: dict[str, Any], reason: str) -> None:
    with pytest.raises(Reject) as info:
        decode(av)
    assert reason in info.value.reason


def test_two_tags_are_rejected() -> None:
    with pytest.raises(Reject, match="exactly one type tag"):
        decode({"BOOL": True, "NULL": True})


def test_binary_from_a_boto3_binary_wrapper() -> None:
    from boto3.dynamodb.types import Binary

    assert decode({"B": Binary(b"\x01\x02")}) == b"\x01\x02"
    assert decode({"B": bytearray(b"\x03")}) == b"\x03"


@settings(max_examples=200, deadline=None)
@given(items())
def test_agrees_with_typedeserializer(item: dict[str, Any]) -> None:
    """On everything boto3 can decode, we decode the same values (Binary compares equal to bytes)."""
    raw = serialize(item)
    deserializer = TypeDeserializer()
    assert decode_item(raw) == {k: deserializer.deserialize(v) for k, v in raw.items()}
    assert decode_item(raw) == item


@settings(max_examples=100, deadline=None)
@given(items())
def test_export_json_with_base64_binaries_decodes_the_same(item: dict[str, Any]) -> None:
    """An export file or a Lambda event carries B/BS as base64 text; the result is the same bytes."""
    raw = serialize(item)
    assert decode_item(_as_export_json(raw)) == decode_item(raw)


def _as_export_json(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _export_av(av) for name, av in item.items()}


def _export_av(av: dict[str, Any]) -> dict[str, Any]:
    ((tag, value),) = av.items()
    if tag == "B":
        return {"B": base64.b64encode(bytes(value)).decode()}
    if tag == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode() for b in value]}
    if tag == "M":
        return {"M": _as_export_json(value)}
    if tag == "L":
        return {"L": [_export_av(v) for v in value]}
    return av
