"""compile_mapping / Converter / route: filters, upserts, deletes, TTL, children and dead-letter reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ddbrepl.codec import compile_mapping, route
from ddbrepl.codec.rows import convert_all
from ddbrepl.mapping.model import Transform
from ddbrepl.records import ChildRows, Delete, RawChange, Rejected, Upsert
from tests.unit.codec.helpers import child, col, cond, mapping


def S(v: str) -> dict[str, Any]:
    return {"S": v}


def N(v: str) -> dict[str, Any]:
    return {"N": v}


def insert(image: dict[str, Any], key: tuple[str, ...] = ("pk",), seq: int | None = None) -> RawChange:
    return RawChange("INSERT", {k: image[k] for k in key}, new_image=image, sequence=seq)


EMPLOYEES = mapping(
    col("Id", "Id", "bigint", primary_key=True),
    col("Name", "empName", "varchar(20)", on_overflow="truncate"),
    col("Department", "empDepartment", "varchar(10)", default="NA"),
    key=("Id",),
    name="employees",
)


def test_the_design_example() -> None:
    op = compile_mapping(EMPLOYEES)(insert({"Id": N("7"), "empName": S("A" * 25)}, key=("Id",), seq=11))
    assert op == Upsert(key=(7,), values=(7, "A" * 20, "NA"), sequence=11)


def test_values_follow_columns_and_key_follows_source_key_order() -> None:
    m = mapping(
        col("note", "note", "text"),
        col("sk", "sk", "text", primary_key=True),
        col("pk", "pk", "bigint", primary_key=True),
        key=("pk", "sk"),
    )
    op = compile_mapping(m)(insert({"pk": N("1"), "sk": S("a"), "note": S("n")}, key=("pk", "sk")))
    assert isinstance(op, Upsert)
    assert op.values == ("n", "a", 1)
    assert op.key == (1, "a")


def test_paths_nested_lists_quoted_and_event_fields() -> None:
    m = mapping(
        col("pk", "pk", "text", primary_key=True),
        col("city", "address.city", "text"),
        col("sku", "items[1].sku", "text"),
        col("dotted", '"a.b".c', "bigint"),
        col("ev", "$event.name", "text"),
        col("seq", "$event.sequence", "numeric(40,0)"),
        col("at", "$event.time", "timestamptz"),
        col("doc", "$item", "jsonb"),
    )
    image = {
        "pk": S("p"),
        "address": {"M": {"city": S("Oslo")}},
        "items": {"L": [{"M": {"sku": S("x")}}, {"M": {"sku": S("y")}}]},
        "a.b": {"M": {"c": N("5")}},
    }
    when = datetime(2024, 1, 1, tzinfo=UTC)
    change = RawChange("MODIFY", {"pk": S("p")}, image, sequence=10**39, approx_time=when)
    op = compile_mapping(m)(change)
    assert isinstance(op, Upsert)
    assert op.values[:7] == ("p", "Oslo", "y", 5, "MODIFY", 10**39, when)
    assert op.values[7].startswith('{"pk":"p","address":{"city":"Oslo"}')


def test_absent_paths_are_null_not_errors() -> None:
    m = mapping(
        col("pk", "pk", "text", primary_key=True), col("c", "a.b[3].c", "text"), col("s", "$event.sequence", "numeric")
    )
    op = compile_mapping(m)(insert({"pk": S("p"), "a": {"M": {"b": S("not a list")}}}))
    assert isinstance(op, Upsert) and op.values == ("p", None, None)


def test_only_the_attributes_read_are_decoded() -> None:
    """A malformed attribute the mapping never reads cannot reject the change: decoding is lazy."""
    m = mapping(col("pk", "pk", "text", primary_key=True), col("n", "n", "numeric"))
    op = compile_mapping(m)(insert({"pk": S("p"), "n": N("1"), "junk": {"N": "not a number"}}))
    assert op == Upsert(("p",), ("p", Decimal(1)), None)


def test_null_and_absent_use_the_default_else_not_null_rejects() -> None:
    m = mapping(
        col("pk", "pk", "text", primary_key=True),
        col("d", "d", "integer", default=5),
        col("req", "req", "text", nullable=False),
        col("opt", "opt", "text"),
    )
    conv = compile_mapping(m)
    op = conv(insert({"pk": S("p"), "d": {"NULL": True}, "req": S("r")}))
    assert op == Upsert(("p",), ("p", 5, "r", None), None)
    rejected = conv(insert({"pk": S("p"), "req": {"NULL": True}}))
    assert isinstance(rejected, Rejected)
    assert rejected.column == "req" and "NULL, and the column is NOT NULL with no default" in rejected.reason
    absent = conv(insert({"pk": S("p")}))
    assert isinstance(absent, Rejected) and "is absent" in absent.reason


def test_a_default_that_does_not_fit_is_a_mapping_error() -> None:
    with pytest.raises(ValueError, match="default 'abc'"):
        compile_mapping(mapping(col("pk", "pk", "text", primary_key=True), col("d", "d", "integer", default="abc")))


def test_rejection_names_mapping_column_path_and_an_excerpt() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("n", "a.n", "smallint"), name="orders")
    change = insert({"pk": S("p"), "a": {"M": {"n": N("123456")}}})
    op = compile_mapping(m)(change)
    assert op == Rejected(
        "orders",
        "column 'n': 123456 is out of range for smallint (-32768..32767)",
        change,
        column="n",
        path="a.n",
        value_excerpt="123456",
    )


def test_excerpts_are_short_and_storable() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("t", "t", "varchar(5)"))
    op = compile_mapping(m)(insert({"pk": S("p"), "t": S("\x00" + "x" * 500)}))
    assert isinstance(op, Rejected)
    assert op.value_excerpt is not None and len(op.value_excerpt) <= 200
    assert "\x00" not in op.value_excerpt and op.value_excerpt.startswith("\\x00xxx")


def test_missing_new_image_is_rejected() -> None:
    change = RawChange("MODIFY", {"pk": S("p")})
    op = compile_mapping(mapping(col("pk", "pk", "text", primary_key=True), col("x", "x", "text")))(change)
    assert isinstance(op, Rejected) and "NEW_IMAGE" in op.reason


def test_keys_only_records_suffice_for_a_mapping_of_keys() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("seq", "$event.sequence", "numeric(40,0)"))
    assert compile_mapping(m)(RawChange("MODIFY", {"pk": S("p")}, sequence=5)) == Upsert(("p",), ("p", 5), 5)


def test_convert_all_drops_filtered_changes() -> None:
    conv = compile_mapping(mapping(col("pk", "pk", "text", primary_key=True), events=("INSERT",)))
    changes = [insert({"pk": S("a")}), RawChange("REMOVE", {"pk": S("a")}), insert({"pk": S("b")})]
    assert convert_all(conv, changes) == [Upsert(("a",), ("a",), None), Upsert(("b",), ("b",), None)]


def test_malformed_input_costs_one_record_not_the_run() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("m", "m", "jsonb"))
    op = compile_mapping(m)(insert({"pk": S("p"), "m": {"M": {"x": "not an attribute value"}}}))
    assert isinstance(op, Rejected) and op.column == "m" and "an attribute value is an object" in op.reason
    assert op.value_excerpt is not None and "not an attribute value" in op.value_excerpt


# --- deletes and TTL -------------------------------------------------------------------------------------------


def test_remove_uses_keys_only_through_key_transforms() -> None:
    m = mapping(
        col(
            "user_id",
            "pk",
            "bigint",
            Transform("strip_prefix", "USER#"),
            Transform("parse", "number"),
            primary_key=True,
        ),
        col("name", "name", "text", nullable=False),
    )
    change = RawChange("REMOVE", {"pk": S("USER#42")}, old_image=None, sequence=9)
    assert compile_mapping(m)(change) == Delete((42,), 9, soft=False)
    bad = compile_mapping(m)(RawChange("REMOVE", {"pk": S("ORDER#1")}))
    assert isinstance(bad, Rejected) and bad.column == "user_id" and "does not start with 'USER#'" in bad.reason


@pytest.mark.parametrize(
    ("delete", "ttl_delete", "is_ttl", "expected"),
    [
        ("hard", "hard", False, Delete(("p",), 1, soft=False)),
        ("soft", "hard", False, Delete(("p",), 1, soft=True)),
        ("hard", "soft", True, Delete(("p",), 1, soft=True)),
        ("soft", "hard", True, Delete(("p",), 1, soft=False)),
        ("hard", "ignore", True, None),
        ("hard", "ignore", False, Delete(("p",), 1, soft=False)),
    ],
)
def test_delete_modes(delete: str, ttl_delete: str, is_ttl: bool, expected: Delete | None) -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), delete=delete, ttl_delete=ttl_delete)
    change = RawChange("REMOVE", {"pk": S("p")}, sequence=1, ttl_delete=is_ttl)
    assert compile_mapping(m)(change) == expected


# --- filters ---------------------------------------------------------------------------------------------------


def typed(entity: str, **kw: Any) -> Any:
    return mapping(
        col("pk", "pk", "text", primary_key=True),
        where=(cond("type", "equals", entity),),
        name=entity.lower(),
        **kw,
    )


def test_events_filter() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), events=("INSERT",))
    conv = compile_mapping(m)
    assert isinstance(conv(insert({"pk": S("p")})), Upsert)
    assert conv(RawChange("MODIFY", {"pk": S("p")}, {"pk": S("p")})) is None
    assert conv(RawChange("REMOVE", {"pk": S("p")})) is None


@pytest.mark.parametrize(
    ("op", "value", "attr", "passes"),
    [
        ("equals", "A", S("A"), True),
        ("equals", "A", S("B"), False),
        ("equals", "A", None, False),
        ("equals", Decimal(1), N("1.0"), True),
        ("equals", Decimal(1), S("1"), False),
        ("equals", True, N("1"), False),
        ("equals", True, {"BOOL": True}, True),
        ("not_equals", "A", S("B"), True),
        ("not_equals", "A", S("A"), False),
        ("not_equals", "A", None, True),
        ("begins_with", "USER#", S("USER#1"), True),
        ("begins_with", "USER#", S("ORDER#1"), False),
        ("begins_with", "1", N("12"), False),
        ("exists", True, S("x"), True),
        ("exists", True, {"NULL": True}, True),
        ("exists", True, None, False),
        ("exists", False, None, True),
        ("in", ("A", "B"), S("B"), True),
        ("in", ("A", "B"), S("C"), False),
        ("in", (Decimal(1), "x"), N("1"), True),
        ("in", ("A",), None, False),
    ],
)
def test_where_conditions(op: str, value: Any, attr: dict[str, Any] | None, passes: bool) -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), where=(cond("a", op, value),))
    image: dict[str, Any] = {"pk": S("p")} | ({} if attr is None else {"a": attr})
    result = compile_mapping(m)(insert(image))
    assert isinstance(result, Upsert) if passes else result is None


def test_conditions_on_nested_paths_all_must_hold() -> None:
    m = mapping(
        col("pk", "pk", "text", primary_key=True),
        where=(cond("meta.kind", "equals", "x"), cond("pk", "begins_with", "U")),
    )
    conv = compile_mapping(m)
    assert isinstance(conv(insert({"pk": S("U1"), "meta": {"M": {"kind": S("x")}}})), Upsert)
    assert conv(insert({"pk": S("V1"), "meta": {"M": {"kind": S("x")}}})) is None


def test_remove_is_judged_on_the_old_image_else_passes_on_keys_only() -> None:
    conv = compile_mapping(typed("User"))
    keys = {"pk": S("p")}
    assert conv(RawChange("REMOVE", keys, old_image={"pk": S("p"), "type": S("User")})) == Delete(("p",), None)
    assert conv(RawChange("REMOVE", keys, old_image={"pk": S("p"), "type": S("Order")})) is None
    assert conv(RawChange("REMOVE", keys)) == Delete(("p",), None)  # NEW_IMAGE view: harmless delete


def test_conditions_on_key_attributes_still_apply_to_keys_only_removes() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), where=(cond("pk", "begins_with", "USER#"),))
    conv = compile_mapping(m)
    assert conv(RawChange("REMOVE", {"pk": S("ORDER#1")})) is None
    assert conv(RawChange("REMOVE", {"pk": S("USER#1")})) == Delete(("USER#1",), None)


def test_an_item_leaving_the_entity_is_deleted_from_it() -> None:
    conv = compile_mapping(typed("User", delete="soft"))
    change = RawChange(
        "MODIFY",
        {"pk": S("p")},
        new_image={"pk": S("p"), "type": S("Order")},
        old_image={"pk": S("p"), "type": S("User")},
        sequence=3,
    )
    assert conv(change) == Delete(("p",), 3, soft=True)


def test_an_item_leaving_the_entity_is_kept_when_removes_are_not_taken() -> None:
    m = mapping(
        col("pk", "pk", "text", primary_key=True), events=("INSERT", "MODIFY"), where=(cond("type", "equals", "User"),)
    )
    change = RawChange(
        "MODIFY",
        {"pk": S("p")},
        new_image={"pk": S("p"), "type": S("Order")},
        old_image={"pk": S("p"), "type": S("User")},
    )
    assert compile_mapping(m)(change) is None


def test_an_event_not_taken_is_skipped_before_anything_is_read() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("x", "x", "text"), events=("INSERT",))
    assert compile_mapping(m)(RawChange("MODIFY", {"pk": S("p")})) is None  # no image, yet not a rejection


def test_route_single_table_design() -> None:
    users, orders = typed("User"), typed("Order")
    converters = [compile_mapping(users), compile_mapping(orders)]
    routed = route(converters, insert({"pk": S("p"), "type": S("Order")}))
    assert routed == [(orders, Upsert(("p",), ("p",), None))]
    assert route(converters, insert({"pk": S("p"), "type": S("Invoice")})) == []
    removed = route(converters, RawChange("REMOVE", {"pk": S("p")}))
    assert [m.name for m, _ in removed] == ["user", "order"]


# --- children --------------------------------------------------------------------------------------------------


def parent_with(*children: Any) -> Any:
    return mapping(col("pk", "pk", "text", primary_key=True), children=children)


def test_list_children_get_index_and_value() -> None:
    m = parent_with(
        child(
            "order_items",
            "items",
            col("line", "$index", "integer", in_child=True, primary_key=True),
            col("sku", "$value.sku", "text", in_child=True),
            col("qty", "$value.qty", "numeric(10,2)", in_child=True),
            col("order_pk", "pk", "text"),
        )
    )
    image = {
        "pk": S("o1"),
        "items": {
            "L": [
                {"M": {"sku": S("a"), "qty": N("1.5")}},
                {"M": {"sku": S("b")}},
            ]
        },
    }
    op = compile_mapping(m)(insert(image))
    assert isinstance(op, Upsert)
    assert op.children == (ChildRows(0, ((0, "a", Decimal("1.5"), "o1"), (1, "b", None, "o1"))),)


def test_map_children_get_key_and_value_and_respect_only_keys() -> None:
    m = parent_with(
        child(
            "identifiers",
            "profile",
            col("kind", "$key", "text", in_child=True, primary_key=True),
            col("value", "$value", "text", Transform("lower"), in_child=True),
            only_keys=frozenset({"email", "phone"}),
        )
    )
    image = {"pk": S("u1"), "profile": {"M": {"email": S("A@X.COM"), "name": S("Ann"), "phone": S("+1")}}}
    op = compile_mapping(m)(insert(image))
    assert isinstance(op, Upsert)
    assert op.children == (ChildRows(0, (("email", "a@x.com"), ("phone", "+1"))),)


def test_set_children_are_sorted_and_absent_children_are_empty() -> None:
    m = parent_with(
        child(
            "tags", "tags", col("pos", "$index", "integer", in_child=True), col("tag", "$value", "text", in_child=True)
        )
    )
    conv = compile_mapping(m)
    op = conv(insert({"pk": S("p"), "tags": {"SS": ["b", "a"]}}))
    assert isinstance(op, Upsert) and op.children == (ChildRows(0, ((0, "a"), (1, "b"))),)
    empty = conv(insert({"pk": S("p")}))
    assert isinstance(empty, Upsert) and empty.children == (ChildRows(0, ()),)
    null = conv(insert({"pk": S("p"), "tags": {"NULL": True}}))
    assert isinstance(null, Upsert) and null.children == (ChildRows(0, ()),)


def test_a_bad_child_value_rejects_the_change_with_its_place() -> None:
    m = parent_with(child("items", "items", col("qty", "$value", "smallint", in_child=True)))
    conv = compile_mapping(m)
    op = conv(insert({"pk": S("p"), "items": {"L": [N("1"), N("99999")]}}))
    assert isinstance(op, Rejected)
    assert op.column == "items.qty" and op.path == "items[1] $value" and "out of range" in op.reason
    scalar = conv(insert({"pk": S("p"), "items": S("x")}))
    assert isinstance(scalar, Rejected) and "L, M or a set" in scalar.reason


def test_key_columns_must_read_key_attributes() -> None:
    with pytest.raises(ValueError, match="must read a key attribute"):
        compile_mapping(mapping(col("pk", "other", "text", primary_key=True)))


def test_anything_unforeseen_is_still_one_rejected_record() -> None:
    m = mapping(col("pk", "pk", "text", primary_key=True), col("m", "m", "jsonb"))
    op = compile_mapping(m)(insert({"pk": S("p"), "m": {"M": {"x": "y"}}}))  # "y" is no attribute value
    assert isinstance(op, Rejected) and op.reason.startswith("unexpected AttributeError")
