"""Transforms: pure, in order, and rejecting rather than guessing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ddbrepl.codec.reject import Reject
from ddbrepl.codec.transforms import compile_transform, compile_transforms
from ddbrepl.mapping.model import Transform


def run(kind: str, arg: Any, value: Any) -> Any:
    return compile_transform(Transform(kind, arg))(value)  # type: ignore[arg-type]


def test_strip_prefix() -> None:
    assert run("strip_prefix", "USER#", "USER#42") == "42"
    assert run("strip_prefix", "USER#", "USER#") == ""
    with pytest.raises(Reject, match="does not start with 'USER#'"):
        run("strip_prefix", "USER#", "ORDER#42")
    with pytest.raises(Reject, match="applies to strings"):
        run("strip_prefix", "USER#", Decimal(1))


def test_regex_keeps_the_first_group() -> None:
    assert run("regex", r"^ORDER#(\d+)$", "ORDER#0042") == "0042"
    assert run("regex", r"#(\w+)#(\w+)", "a#b#c") == "b"
    assert run("regex", r"\d+", "ab12cd") == "12"  # no group: the whole match
    with pytest.raises(Reject, match="does not match regex"):
        run("regex", r"^ORDER#(\d+)$", "ORDER#x")
    with pytest.raises(Reject, match="first group did not take part"):
        run("regex", r"^(a)?b$", "b")


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("seconds", Decimal("0"), datetime(1970, 1, 1, tzinfo=UTC)),
        ("seconds", Decimal("1700000000"), datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("seconds", Decimal("1700000000.123456"), datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        ("seconds", Decimal("1700000000.0000005"), datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # half-even
        ("seconds", Decimal("1700000000.0000015"), datetime(2023, 11, 14, 22, 13, 20, 2, tzinfo=UTC)),
        ("seconds", Decimal("-1"), datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("millis", Decimal("1700000000123"), datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("millis", Decimal("1700000000123.5"), datetime(2023, 11, 14, 22, 13, 20, 123500, tzinfo=UTC)),
        ("millis", "1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("seconds", 1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_epoch(unit: str, value: Any, expected: datetime) -> None:
    result = run("epoch", unit, value)
    assert result == expected
    assert result.tzinfo is UTC


def test_epoch_millis_read_as_seconds_is_rejected() -> None:
    with pytest.raises(Reject, match="outside the years 1-9999"):
        run("epoch", "seconds", Decimal("1700000000123"))
    with pytest.raises(Reject, match="outside the years"):
        run("epoch", "seconds", Decimal("1E+125"))
    with pytest.raises(Reject, match="expected a number"):
        run("epoch", "seconds", "yesterday")
    with pytest.raises(Reject, match="expected a number"):
        run("epoch", "seconds", True)


def test_map_looks_up_by_kind() -> None:
    step = compile_transform(Transform("map", (("A", "active"), ("1", "one"), ("I", None))))
    assert step("A") == "active"
    assert step(Decimal("1")) == "one"  # YAML keys are strings; N 1 still finds "1"
    assert step(Decimal("1.0")) == "one"
    assert step("1") == "one"
    assert step("I") is None
    with pytest.raises(Reject, match="not in the map"):
        step("B")
    with pytest.raises(Reject, match="not in the map"):
        step(True)  # true is not 1
    bools = compile_transform(Transform("map", {True: "yes", False: "no"}))
    assert bools(False) == "no"
    with pytest.raises(Reject, match="map applies to"):
        bools(b"x")


def test_map_targets_keep_numbers_exact() -> None:
    step = compile_transform(Transform("map", (("a", 0.1), ("b", 7))))
    assert step("a") == Decimal("0.1")
    assert step("b") == Decimal(7)


def test_case_and_trim() -> None:
    assert run("lower", None, "ÀBC") == "àbc"
    assert run("upper", None, "straße") == "STRASSE"
    assert run("trim", None, "  a b \t\n") == "a b"
    with pytest.raises(Reject):
        run("lower", None, Decimal(1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", Decimal(12)), ("-1.50", Decimal("-1.50")), ("1e3", Decimal("1E+3")), (Decimal("7"), Decimal(7))],
)
def test_parse_number(value: Any, expected: Decimal) -> None:
    result = run("parse", "number", value)
    assert result == expected and str(result) == str(expected)


@pytest.mark.parametrize("value", ["", "1,5", "NaN", "Infinity", "0x10", " 1", "1_000", True])
def test_parse_number_rejects(value: Any) -> None:
    with pytest.raises(Reject):
        run("parse", "number", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (Decimal(0), False),
        (Decimal(1), True),
        ("true", True),
        ("FALSE", False),
        ("t", True),
        ("no", False),
        (" yes ", True),
        ("0", False),
    ],
)
def test_parse_boolean(value: Any, expected: bool) -> None:
    assert run("parse", "boolean", value) is expected


@pytest.mark.parametrize("value", [Decimal(2), Decimal("0.5"), "maybe", "", b"\x01"])
def test_parse_boolean_rejects(value: Any) -> None:
    with pytest.raises(Reject):
        run("parse", "boolean", value)


def test_chain_applies_in_order_and_stops_at_null() -> None:
    chain = compile_transforms((Transform("trim"), Transform("strip_prefix", "u#"), Transform("upper")))
    assert chain is not None and chain("  u#ab ") == "AB"
    to_null = compile_transforms((Transform("map", (("x", None),)), Transform("upper")))
    assert to_null is not None and to_null("x") is None
    assert compile_transforms(()) is None


def test_bad_arguments_fail_at_compile_time() -> None:
    with pytest.raises(ValueError, match="epoch takes"):
        compile_transform(Transform("epoch", "hours"))
    with pytest.raises(ValueError, match="parse takes"):
        compile_transform(Transform("parse", "date"))
    with pytest.raises(ValueError, match="unknown transform"):
        compile_transform(Transform("reverse"))  # type: ignore[arg-type]
