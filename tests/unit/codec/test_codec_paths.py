"""Attribute paths evaluated lazily on raw DynamoDB JSON: absent vs NULL, every root, child elements."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ddbrepl.codec.paths import MISSING, Element, compile_path, elements, walk
from ddbrepl.mapping.paths import parse_path
from ddbrepl.records import RawChange

ITEM: dict[str, Any] = {
    "pk": {"S": "p"},
    "a.b": {"M": {"c": {"N": "1"}}},
    "m": {"M": {"list": {"L": [{"S": "x"}, {"M": {"sku": {"S": "y"}}}]}, "nul": {"NULL": True}}},
}
CHANGE = RawChange("MODIFY", {"pk": {"S": "p"}}, ITEM, sequence=10**30, approx_time=datetime(2024, 1, 1, tzinfo=UTC))


def read(text: str, element: Element | None = None, in_child: bool = False) -> Any:
    return compile_path(parse_path(text, in_child=in_child))(ITEM, CHANGE, element)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pk", "p"),
        ('"a.b".c', Decimal(1)),
        ("m.list[0]", "x"),
        ("m.list[1].sku", "y"),
        ("m.nul", None),
        ("$event.name", "MODIFY"),
        ("$event.sequence", 10**30),
        ("$event.time", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_reads(text: str, expected: Any) -> None:
    assert read(text) == expected


@pytest.mark.parametrize("text", ["nope", "m.list[2]", "m.list[0].sku", "pk.x", "pk[0]", "m.nul.x", "a.b"])
def test_absent_is_missing_not_null(text: str) -> None:
    assert read(text) is MISSING


def test_item_root_decodes_everything() -> None:
    assert read("$item") == {"pk": "p", "a.b": {"c": Decimal(1)}, "m": {"list": ["x", {"sku": "y"}], "nul": None}}


def test_event_fields_missing_on_a_backfilled_item() -> None:
    backfill = RawChange("INSERT", {"pk": {"S": "p"}}, ITEM)
    assert compile_path(parse_path("$event.sequence"))(ITEM, backfill, None) is MISSING
    assert compile_path(parse_path("$event.time"))(ITEM, backfill, None) is MISSING


def test_element_roots() -> None:
    el = Element(3, None, {"M": {"sku": {"S": "z"}}})
    assert read("$index", el, in_child=True) == 3
    assert read("$key", el, in_child=True) is MISSING
    assert read("$value.sku", el, in_child=True) == "z"
    assert read("$value", el, in_child=True) == {"sku": "z"}
    assert read("$value.nope", el, in_child=True) is MISSING
    assert read("$value", None, in_child=True) is MISSING


def test_walk() -> None:
    assert walk(ITEM["m"], ("list", 1, "sku")) == {"S": "y"}
    assert walk(ITEM["m"], ("list", 9)) is None
    assert walk(None, ("x",)) is None


def test_elements_of_lists_maps_and_sets() -> None:
    assert elements({"L": [{"S": "a"}]}) == [Element(0, None, {"S": "a"})]
    assert elements({"M": {"k": {"N": "1"}, "j": {"N": "2"}}}, frozenset({"k"})) == [Element(None, "k", {"N": "1"})]
    assert elements({"NS": ["10", "9", "-1.5"]}) == [
        Element(0, None, {"N": "-1.5"}),
        Element(1, None, {"N": "9"}),
        Element(2, None, {"N": "10"}),
    ]
    assert elements({"BS": ["AQ==", "AA=="]}) == [Element(0, None, {"B": b"\x00"}), Element(1, None, {"B": b"\x01"})]
    assert elements({"S": "x"}) is None
