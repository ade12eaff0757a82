"""ION export values → DynamoDB JSON: every type, exact numbers, sets, nulls, and what DynamoDB never writes."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import given
from hypothesis import strategies as st

from ddbrepl.sources import ion
from tests.fakes.exports import ion_decimal, ion_struct


def item_of(text: str) -> dict[str, Any]:
    (value,) = ion.parse(text.encode())
    return ion.to_item(value["Item"])


def test_the_aws_documented_example_line() -> None:
    line = (
        '$ion_1_0 {Item:{Authors:$dynamodb_SS::["Author1","Author2"],Dimensions:"8.5 x 11.0 x 0.5",'
        'ISBN:"333-3333333333",Id:103.,InPublication:false,PageCount:6d2,Price:2d3,ProductCategory:"Book",'
        'Title:"Book 103 Title"}}'
    )
    assert item_of(line) == {
        "Authors": {"SS": ["Author1", "Author2"]},
        "Dimensions": {"S": "8.5 x 11.0 x 0.5"},
        "ISBN": {"S": "333-3333333333"},
        "Id": {"N": "103"},
        "InPublication": {"BOOL": False},
        "PageCount": {"N": "600"},
        "Price": {"N": "2000"},
        "ProductCategory": {"S": "Book"},
        "Title": {"S": "Book 103 Title"},
    }


def test_every_type() -> None:
    line = (
        "$ion_1_0 {Item:{"
        "big:12345678901234567890123456789012345678.,neg:-1.5,tiny:1d-130,int:42,"
        'blob:{{aGVsbG8=}},empty_blob:{{}},s:"héllo \\"q\\"",empty_s:"",'
        "t:true,f:false,n:null,typed_null:null.struct,"
        'm:{inner:{deep:[1.,"x",{k:null}]},"with space":1.},l:[],em:{},'
        'ss:$dynamodb_SS::["a",""],ns:$dynamodb_NS::[1.,2.5,-3d2],bs:$dynamodb_BS::[{{AAE=}},{{}}]'
        "}}"
    )
    assert item_of(line) == {
        "big": {"N": "12345678901234567890123456789012345678"},
        "neg": {"N": "-1.5"},
        "tiny": {"N": "1E-130"},
        "int": {"N": "42"},
        "blob": {"B": b"hello"},
        "empty_blob": {"B": b""},
        "s": {"S": 'héllo "q"'},
        "empty_s": {"S": ""},
        "t": {"BOOL": True},
        "f": {"BOOL": False},
        "n": {"NULL": True},
        "typed_null": {"NULL": True},
        "m": {
            "M": {
                "inner": {"M": {"deep": {"L": [{"N": "1"}, {"S": "x"}, {"M": {"k": {"NULL": True}}}]}}},
                "with space": {"N": "1"},
            }
        },
        "l": {"L": []},
        "em": {"M": {}},
        "ss": {"SS": ["a", ""]},
        "ns": {"NS": ["1", "2.5", "-300"]},
        "bs": {"BS": [b"\x00\x01", b""]},
    }


def test_bool_is_not_taken_for_a_number() -> None:
    assert item_of("{Item:{b:true,i:1}}") == {"b": {"BOOL": True}, "i": {"N": "1"}}


@pytest.mark.parametrize(
    ("ion_text", "n_text"),
    [
        ("1.50", "1.50"),
        ("6d2", "600"),
        ("1d100", "1" + "0" * 100),
        ("-0.", "-0"),
        ("0.001", "0.001"),
        ("9.9999999999999999999999999999999999999d125", "99999999999999999999999999999999999999" + "0" * 88),
    ],
)
def test_numbers_are_exact(ion_text: str, n_text: str) -> None:
    assert item_of(f"{{Item:{{x:{ion_text}}}}}") == {"x": {"N": n_text}}
    assert Decimal(n_text) == Decimal(simpleion.loads(ion_text))


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("{Item:{t:2020-01-01T00:00Z}}", "timestamp"),
        ("{Item:{s:sym}}", "symbol"),
        ('{Item:{c:{{"clob"}}}}', "clob"),
        ("{Item:{x:(a b)}}", "sexp"),
        ('{Item:{x:$dynamodb_NS::["not a number"]}}', "NS set holds a S element"),
    ],
)
def test_what_dynamodb_never_writes_is_refused(text: str, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        item_of(text)


def test_a_bad_line_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid Ion"):
        ion.parse(b"$ion_1_0 {Item:{a:")


def test_a_version_marker_alone_yields_nothing() -> None:
    assert ion.parse(b"$ion_1_0") == []


# The fake writer's Ion (used by the integration tests) and this reader agree on any DynamoDB value.
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
numbers = (
    st.decimals(allow_nan=False, allow_infinity=False, places=None)
    .filter(lambda d: d == 0 or -130 <= d.adjusted() <= 125)
    .map(lambda d: str(d.normalize()) if d != 0 else "0")
)
blobs = st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
scalars = st.one_of(
    st.text(max_size=8).map(lambda s: {"S": s}),
    numbers.map(lambda n: {"N": n}),
    blobs.map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=4), min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(names, inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=10,
)


def normal(av: Any) -> Any:
    """A DynamoDB JSON value with N as Decimal and B as bytes, for comparing JSON with ION."""
    ((tag, raw),) = av.items()
    if tag == "N":
        return ("N", Decimal(raw))
    if tag == "NS":
        return ("NS", [Decimal(v) for v in raw])
    if tag == "B":
        return ("B", raw if isinstance(raw, bytes) else base64.b64decode(raw))
    if tag == "M":
        return ("M", {k: normal(v) for k, v in raw.items()})
    if tag == "L":
        return ("L", [normal(v) for v in raw])
    return (tag, raw)


@given(st.dictionaries(names, values, min_size=1, max_size=5))
def test_round_trip_through_ion_text(item: dict[str, Any]) -> None:
    line = "$ion_1_0 " + ion_struct({"Item": item}, top=True)
    assert {k: normal(v) for k, v in item_of(line).items()} == {k: normal(v) for k, v in item.items()}


def test_ion_decimal_spelling() -> None:
    assert ion_decimal("103") == "103."
    assert ion_decimal("1.50") == "150d-2"
    assert ion_decimal("1E+2") == "1d2"
