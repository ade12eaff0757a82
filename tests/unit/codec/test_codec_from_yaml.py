"""The contract with mapping.check: a YAML mapping using every feature compiles and converts as written."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ddbrepl.codec import compile_mapping, route
from ddbrepl.mapping.check import check_paths
from ddbrepl.records import ChildRows, Delete, RawChange, Upsert

PROFILES = """\
version: 1
source: {table: App, key: [pk, sk]}
target: {table: profiles}
filter:
  events: [INSERT, MODIFY, REMOVE]
  where:
    - {attribute: sk, equals: PROFILE}
    - {attribute: kind, in: [user, admin]}
delete: soft
ttl_delete: ignore
columns:
  - {name: user_id, from: pk, type: bigint, primary_key: true, transform: [{strip_prefix: "USER#"}, {parse: number}]}
  - {name: status, from: status, type: text, transform: [trim, {map: {A: active, "1": one}}], default: unknown}
  - {name: score, from: score, type: "numeric(6,2)"}
  - {name: vip, from: vip, type: boolean, transform: [{parse: boolean}]}
  - {name: seen, from: seen, type: timestamptz, transform: [{epoch: millis}]}
children:
  - target: {table: profile_ids}
    from: ids
    only_keys: [email, phone]
    columns:
      - {name: kind, from: $key, type: text, primary_key: true}
      - {name: value, from: $value, type: text, transform: [lower]}
"""
ORDERS = """\
version: 1
source: {table: App, key: [pk, sk]}
target: {table: orders}
filter:
  where:
    - {attribute: sk, begins_with: "ORDER#"}
columns:
  - {name: pk, from: pk, type: text, primary_key: true}
  - name: order_no
    from: sk
    type: bigint
    primary_key: true
    transform: [{regex: "^ORDER#(\\\\d+)$"}, {parse: number}]
  - {name: total, from: total, type: numeric}
"""


def test_a_loaded_mapping_converts_as_written(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(PROFILES)
    (tmp_path / "orders.yaml").write_text(ORDERS)
    models, problems = check_paths([tmp_path])
    assert problems == []
    by_name = {m.name: m for m in models}
    profiles, orders = by_name["profiles"], by_name["orders"]
    converters = [compile_mapping(profiles), compile_mapping(orders)]

    profile = {
        "pk": {"S": "USER#42"},
        "sk": {"S": "PROFILE"},
        "kind": {"S": "admin"},
        "status": {"S": " 1 "},
        "score": {"N": "12.5"},
        "vip": {"N": "1"},
        "seen": {"N": "1700000000123"},
        "ids": {"M": {"email": {"S": "A@X.COM"}, "name": {"S": "Ann"}}},
    }
    routed = route(converters, RawChange("INSERT", {"pk": profile["pk"], "sk": profile["sk"]}, profile, sequence=1))
    assert len(routed) == 1 and routed[0][0] is profiles
    op = routed[0][1]
    assert isinstance(op, Upsert)
    assert op.key == (42,)
    assert op.values[:4] == (42, "one", Decimal("12.5"), True)
    assert op.values[4].isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert op.children == (ChildRows(0, (("email", "a@x.com"),)),)

    no_status = {**profile, "status": {"NULL": True}}
    modified = converters[0](RawChange("MODIFY", {"pk": profile["pk"], "sk": profile["sk"]}, no_status))
    assert isinstance(modified, Upsert) and modified.values[1] == "unknown"

    order = {"pk": {"S": "USER#42"}, "sk": {"S": "ORDER#0007"}, "total": {"N": "99.90"}}
    routed = route(converters, RawChange("INSERT", {"pk": order["pk"], "sk": order["sk"]}, order))
    assert routed == [(orders, Upsert(("USER#42", 7), ("USER#42", 7, Decimal("99.90")), None))]

    # Keys-only REMOVEs: the profile mapping judges its `sk` condition on the keys; `kind` is unknowable and passes.
    removed = route(converters, RawChange("REMOVE", {"pk": {"S": "USER#42"}, "sk": {"S": "PROFILE"}}, sequence=2))
    assert removed == [(profiles, Delete((42,), 2, soft=True))]
    ttl = RawChange("REMOVE", {"pk": {"S": "USER#42"}, "sk": {"S": "ORDER#7"}}, sequence=3, ttl_delete=True)
    assert route(converters, ttl) == [(orders, Delete(("USER#42", 7), 3))]
