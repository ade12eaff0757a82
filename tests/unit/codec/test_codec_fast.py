"""The codec's shortcuts equal its reference paths: `jsontext` against ``to_json(decode(...))`` byte for byte, and
every `fast` column closure against the general closure of the same column (value, type and Reject reason)."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ddbrepl.codec.attrs import decode, decode_item
from ddbrepl.codec.columns import compile_column
from ddbrepl.codec.convert import to_json
from ddbrepl.codec.jsontext import item_json, value_json
from ddbrepl.codec.reject import Reject
from ddbrepl.mapping.model import Transform
from ddbrepl.records import RawChange
from tests.unit.codec.helpers import col
from tests.unit.codec.strategies import items, serialize

# N texts as they may arrive: canonical, non-canonical spellings of valid numbers, out of range, junk.
number_texts = st.one_of(
    st.from_regex(r"[+-]?\d{0,45}(\.\d{0,45})?([eE][+-]?\d{1,4})?", fullmatch=True),
    st.from_regex(r"-?(0|[1-9]\d{0,40})(\.\d{1,8})?", fullmatch=True),
    st.from_regex(r"-?0\.0{0,9}\d{0,4}", fullmatch=True),
    st.sampled_from(["1E+100", "-0", "0.5", "NaN", "Infinity", "1_000", " 7", "0x10", "1e-131", "9.9E+125"]),
    st.text(max_size=6),
)
base64_texts = st.one_of(
    st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode("ascii")),
    st.from_regex(r"[A-Za-z0-9+/]{0,9}={0,3}", fullmatch=True),  # invalid, or valid with non-zero trailing bits
)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """A comparable result: the value with its exact type and spelling, or the rejection's reason and value."""
    try:
        value = fn(*args, **kwargs)
    except Reject as exc:
        return ("reject", (exc.reason, repr(exc.value)))
    return ("ok", (type(value).__name__, repr(value)))


def _exported(av: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Turn some B bytes into base64 text, as exports and Lambda events carry them."""
    ((tag, value),) = av.items()
    if tag == "B" and data.draw(st.booleans()):
        return {tag: base64.b64encode(value).decode("ascii")}
    if tag == "BS" and data.draw(st.booleans()):
        return {tag: [base64.b64encode(b).decode("ascii") for b in value]}
    if tag == "M":
        return {tag: {k: _exported(v, data) for k, v in value.items()}}
    if tag == "L":
        return {tag: [_exported(v, data) for v in value]}
    return av


@settings(max_examples=400, deadline=None)
@given(items(), st.data())
def test_item_json_is_the_reference_text(item: dict[str, Any], data: st.DataObject) -> None:
    image = {name: _exported(av, data) for name, av in serialize(item).items()}
    for sort_keys in (False, True):
        reference = to_json(decode_item(image), sort_keys=sort_keys)
        # Every item boto3 can write takes the fast path, and prints exactly what the reference prints.
        assert item_json(image, sort_keys=sort_keys) == reference
        for av in image.values():
            assert value_json(av, sort_keys=sort_keys) == to_json(decode(av), sort_keys=sort_keys)


@given(number_texts)
@example("1E+100")
@example("0.0000001")  # str(Decimal) prints 1E-7: not canonical, the exact path prints it
@example("0.000001")
@example("0.0000000")
@example("-0")
@example("00")
@example("1" * 39)
@example("1" * 127)  # beyond DynamoDB's range: rejected by both
def test_number_text_is_the_reference_text(text: str) -> None:
    for av in ({"N": text}, {"L": [{"N": text}]}, {"M": {"n": {"N": text}}}, {"NS": [text, "1"]}):
        fast = value_json(av)
        reference = _outcome(lambda a: to_json(decode(a)), av)
        if fast is None:
            assert reference[0] == "reject", (av, reference)
        else:
            assert reference == ("ok", ("str", repr(fast)))


@given(base64_texts)
def test_base64_text_is_the_reference_text(text: str) -> None:
    for av in ({"B": text}, {"BS": [text, "AA=="]}):
        fast = value_json(av)
        reference = _outcome(lambda a: to_json(decode(a)), av)
        if fast is None:
            assert reference[0] == "reject", (av, reference)
        else:
            assert reference == ("ok", ("str", repr(fast)))


@pytest.mark.parametrize(
    "av",
    [
        {"S": 5},
        {"S": "x", "N": "1"},
        {"X": "1"},
        {"BOOL": "true"},
        {"M": [1]},
        {"L": {"a": {"S": "x"}}},
        {"SS": ["a", 1]},
        {"NS": ["1", "NaN"]},
        {"B": "not base64!"},
        {"S": "\ud800"},  # a lone surrogate: orjson refuses it
        {"M": {"a": {"S": "x\x00y"}}},  # jsonb refuses NUL; json keeps it
        "not an attribute value",
    ],
)
def test_malformed_values_decline_and_the_reference_decides(av: Any) -> None:
    image = {"pk": {"S": "k"}, "a": av}
    for sql_type in ("jsonb", "json"):
        for source in ("$item", "a"):
            column = col("c", source, sql_type)
            fast, general = compile_column(column), compile_column(column, shortcuts=False)
            change = RawChange("INSERT", {"pk": image["pk"]}, new_image=image)
            assert _outcome(fast.value, image, change, None) == _outcome(general.value, image, change, None)


COLUMN_TYPES = [
    "text",
    "varchar(3)",
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "boolean",
    "jsonb",
    "json",
    "text[]",
    "numeric[]",
]
raw_values = st.one_of(
    st.builds(lambda t: {"N": t}, number_texts),
    st.builds(lambda t: {"S": t}, st.text(max_size=5)),
    st.builds(lambda t: {"S": t}, st.sampled_from(["abc", "abcd", "é", "a\x00", "\udc00", ""])),
    st.builds(lambda b: {"BOOL": b}, st.one_of(st.booleans(), st.integers(0, 1), st.none())),
    st.just({"NULL": True}),
    st.builds(lambda t: {"S": t, "N": "1"}, st.text(max_size=2)),
    st.builds(lambda s: {"SS": s}, st.lists(st.text(max_size=3), max_size=3)),
    st.builds(lambda s: {"SS": s}, st.lists(st.sampled_from(["b", "a", "b", 1, "\x00", "é"]), max_size=3)),
    st.builds(lambda s: {"NS": s}, st.lists(number_texts, max_size=3)),
    st.builds(lambda s: {"NS": s}, st.lists(st.sampled_from(["1", "1.0", "-0", "0", "2.50", "1E+2", 3]), max_size=4)),
    st.builds(lambda b: {"B": b}, base64_texts),
    st.just({"M": {"x": {"N": "1"}}}),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(COLUMN_TYPES),
    st.sampled_from(["a", "p.a", "l[0]"]),
    st.one_of(st.none(), raw_values),
    st.booleans(),
    st.booleans(),
)
def test_fast_columns_equal_the_general_column(
    sql_type: str, source: str, av: dict[str, Any] | None, nullable: bool, truncate: bool
) -> None:
    column = col("c", source, sql_type, nullable=nullable, on_overflow="truncate" if truncate else "error")
    fast, general = compile_column(column), compile_column(column, shortcuts=False)
    top: dict[str, Any] = {}
    if av is not None:
        top = {"a": av} if source == "a" else {"p": {"M": {"a": av}}} if source == "p.a" else {"l": {"L": [av]}}
    image = {"pk": {"S": "k"}, **top}
    change = RawChange("INSERT", {"pk": image["pk"]}, new_image=image)
    assert _outcome(fast.value, image, change, None) == _outcome(general.value, image, change, None)


def test_the_shortcuts_are_taken() -> None:
    """The common shapes really get their own closure (not the general one)."""
    shortcut = {
        "text": "text",
        "varchar(3)": "text",
        "bigint": "integer",
        "numeric": "numeric",
        "boolean": "boolean",
        "jsonb": "attr",
        "text[]": "text_set",
        "numeric[]": "number_set",
    }
    for sql_type, closure in shortcut.items():
        assert compile_column(col("c", "a", sql_type)).value.__name__ == closure
        assert compile_column(col("c", "a", sql_type), shortcuts=False).value.__name__ == "top"
    assert compile_column(col("c", "$item", "jsonb")).value.__name__ == "item"
    assert compile_column(col("c", "a", "numeric(5,2)")).value.__name__ == "top"  # bounded numeric: general
    image = {"a": {"N": "1.50"}}
    value = compile_column(col("c", "a", "numeric")).value(image, RawChange("INSERT", image, new_image=image), None)
    assert value == Decimal("1.50") and str(value) == "1.50"


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["seconds", "millis"]),
    st.sampled_from(["timestamptz", "timestamp", "bigint"]),
    st.one_of(
        st.none(),
        raw_values,
        st.builds(lambda n: {"N": str(n)}, st.integers(-(10**19), 10**19)),
        st.builds(lambda n: {"N": str(n)}, st.sampled_from([253402300799, 253402300800, -62135596800, -62135596801])),
    ),
)
def test_epoch_columns_equal_the_general_column(unit: str, sql_type: str, av: dict[str, Any] | None) -> None:
    column = col("c", "a", sql_type, Transform("epoch", unit))
    fast, general = compile_column(column), compile_column(column, shortcuts=False)
    image = {"pk": {"S": "k"}} if av is None else {"pk": {"S": "k"}, "a": av}
    change = RawChange("INSERT", {"pk": image["pk"]}, new_image=image)
    assert _outcome(fast.value, image, change, None) == _outcome(general.value, image, change, None)
    if sql_type == "timestamptz":
        assert fast.value.__name__ == "epoch"
