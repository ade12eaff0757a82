"""Property: any item boto3 can write survives codec → PostgreSQL (COPY) → read back, exactly.

Items come from boto3's TypeSerializer over every type, nested 4 deep. The whole item goes to a jsonb column
through ``$item``; typed columns (numeric, text, bytea, boolean, text[], numeric[], bigint, timestamptz) read
attributes of known types. Numbers are compared as Decimal (jsonb text parsed without floats), sets as sets.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from ddbrepl.codec import compile_mapping
from ddbrepl.codec.convert import make_converter
from ddbrepl.codec.reject import Reject
from ddbrepl.mapping.model import Transform
from ddbrepl.mapping.types import parse_type
from ddbrepl.records import RawChange, Rejected, Upsert
from tests.unit.codec.helpers import col, mapping
from tests.unit.codec.strategies import dynamo_numbers, items, serialize, text_values

COLUMNS = ("pk", "doc", "n", "s", "b", "flag", "ss", "ns", "i", "at")
DDL = """
CREATE TABLE roundtrip (
    pk bigint PRIMARY KEY, doc jsonb NOT NULL, n numeric, s text, b bytea, flag boolean,
    ss text[], ns numeric[], i bigint, at timestamptz
)
"""
MAPPING = mapping(
    col("pk", "pk", "bigint", primary_key=True),
    col("doc", "$item", "jsonb"),
    col("n", "n", "numeric"),
    col("s", "s", "text"),
    col("b", "b", "bytea"),
    col("flag", "flag", "boolean"),
    col("ss", "ss", "text[]"),
    col("ns", "ns", "numeric[]"),
    col("i", "i", "bigint"),
    col("at", "at", "timestamptz", Transform("epoch", "millis")),
)
CONVERT = compile_mapping(MAPPING)
_pks = itertools.count(1)

typed = st.fixed_dictionaries(
    {},
    optional={
        "n": dynamo_numbers(),
        "s": text_values,
        "b": st.binary(max_size=32),
        "flag": st.booleans(),
        "ss": st.sets(text_values, min_size=1, max_size=5),
        "ns": st.sets(dynamo_numbers(), min_size=1, max_size=5),
        "i": st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Decimal),
        "at": st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999).map(Decimal),
    },
)


def _plain(value: Any) -> Any:
    """What jsonb must hold for a decoded value: sets as sorted arrays, bytes as base64, numbers as Decimal."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_plain(v) for v in sorted(value)]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _same(expected: Any, got: Any) -> bool:
    """Deep equality that tells booleans from numbers (True == Decimal(1) in Python) and compares Decimals by value."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and expected.keys() == got.keys()
            and all(_same(v, got[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return isinstance(got, list) and len(expected) == len(got) and all(map(_same, expected, got))
    return type(expected) is type(got) and expected == got


def _roundtrip(conn: psycopg.Connection[Any], raw: dict[str, Any]) -> tuple[Any, ...]:
    """Convert one item as an INSERT, COPY its row in as the sink does, and read it back (jsonb as text)."""
    op = CONVERT(RawChange("INSERT", {"pk": raw["pk"]}, new_image=raw))
    assert isinstance(op, Upsert), op
    with conn.cursor() as cur:
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        with cur.copy(sql.SQL("COPY roundtrip ({}) FROM STDIN").format(columns)) as copy:
            copy.write_row(op.values)
        cur.execute("SELECT doc::text, n, s, b, flag, ss, ns, i, at FROM roundtrip WHERE pk = %s", op.key)
        row = cur.fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def conn(pg_server_url: str) -> Any:
    """One database for the module: hypothesis runs many examples against one table."""
    from psycopg.conninfo import make_conninfo

    name = f"t_codec_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(make_conninfo(pg_server_url, dbname=name), autocommit=True) as c:
        c.execute(DDL)
        yield c
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=items(depth=4), known=typed)
@example(
    extra={
        "edge": {
            "n38": Decimal("12345678901234567890123456789012345678"),
            "neg0": Decimal("-0"),
            "big": Decimal("1E+125"),
            "tiny": Decimal("1E-130"),
            "empty": [b"", "", {}, []],
            "uni": "héllo ☃ 𝄞 \u200b",
            "sets": [{"b", "a"}, {Decimal("2"), Decimal("-1.5")}, {b"\x01", b"\x00"}],
            "deep": {"a": [{"b": [{"c": True}]}]},
        }
    },
    known={
        "n": Decimal("9.9999999999999999999999999999999999999E+125"),
        "s": "",
        "b": b"",
        "ss": {"{", '"q"', "a,b", "\\", "NULL"},
        "ns": {Decimal("1E-130"), Decimal("-0.5")},
        "i": Decimal(-(2**63)),
        "at": Decimal(1700000000123),
    },
)
def test_items_survive_the_round_trip(
    conn: psycopg.Connection[Any], extra: dict[str, Any], known: dict[str, Any]
) -> None:
    pk = next(_pks)
    item = {**{k: v for k, v in extra.items() if k not in COLUMNS}, **known, "pk": Decimal(pk)}
    doc_text, n, s, b, flag, ss, ns, i, at = _roundtrip(conn, serialize(item))

    doc = json.loads(doc_text, parse_float=Decimal, parse_int=Decimal)
    assert _same(_plain(item), doc)
    assert n == known.get("n") and (n is None or isinstance(n, Decimal))
    assert s == known.get("s")
    assert b == known.get("b")
    assert flag is known.get("flag")
    assert (None if ss is None else set(ss)) == known.get("ss") and (ss is None or ss == sorted(ss))
    assert (None if ns is None else set(ns)) == known.get("ns") and (ns is None or ns == sorted(ns))
    assert i == known.get("i")
    expected_at = (
        None if "at" not in known else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(known["at"]))
    )
    assert at == expected_at


def test_values_postgresql_would_refuse_are_rejected_before_copy(conn: psycopg.Connection[Any]) -> None:
    """NUL in text and jsonb, and a number bigint cannot hold: the codec refuses, COPY never sees them."""
    for attrs in (
        {"s": {"S": "a\x00b"}},
        {"ss": {"SS": ["x\x00"]}},
        {"deep": {"M": {"k": {"S": "\x00"}}}},
        {"i": {"N": "9223372036854775808"}},
        {"i": {"N": "1.5"}},
    ):
        raw = {"pk": {"N": "0"}, **attrs}
        op = CONVERT(RawChange("INSERT", {"pk": raw["pk"]}, new_image=raw))
        assert isinstance(op, Rejected), attrs


def test_numbers_as_dynamodb_writes_them_out(conn: psycopg.Connection[Any]) -> None:
    """DynamoDB returns 1e100 as 101 digits (boto3's TypeDeserializer raises on it): exact in numeric and jsonb."""
    googol = "1" + "0" * 100
    raw = {
        "pk": {"N": str(next(_pks))},
        "n": {"N": googol},
        "ns": {"NS": [googol, "1E-130", "-0"]},
        "m": {"M": {"g": {"N": googol}, "x": {"N": "0.000000000000000000000000000000000000000001"}}},
    }
    doc_text, n, _s, _b, _flag, _ss, ns, _i, _at = _roundtrip(conn, raw)
    assert n == Decimal(googol)
    assert ns == [Decimal(0), Decimal("1E-130"), Decimal(googol)]
    doc = json.loads(doc_text, parse_float=Decimal, parse_int=Decimal)
    assert doc["m"] == {"g": Decimal(googol), "x": Decimal("1E-42")}
    assert doc["n"] == Decimal(googol)


def test_every_column_type_copies_in_as_converted(conn: psycopg.Connection[Any]) -> None:
    """Each PostgreSQL type the codec targets takes its converted value through COPY text unchanged."""
    columns = (
        col("pk", "pk", "text", primary_key=True),
        col("si", "si", "smallint"),
        col("nu", "nu", "numeric(10,2)"),
        col("re", "re", "real"),
        col("dp", "dp", "double precision"),
        col("vc", "vc", "varchar(3)", on_overflow="truncate"),
        col("d", "d", "date"),
        col("ts", "ts", "timestamp"),
        col("u", "u", "uuid"),
        col("j", "j", "json"),
        col("ip", "ip", "inet"),
        col("net", "net", "inet"),
        col("ba", "ba", "bigint[]"),
        col("ta", "ta", "text[]"),
        col("bo", "bo", "boolean", Transform("parse", "boolean")),
    )
    conn.execute(
        "CREATE TABLE every_type (pk text PRIMARY KEY, si smallint, nu numeric(10,2), re real, dp double precision,"
        " vc varchar(3), d date, ts timestamp, u uuid, j json, ip inet, net inet, ba bigint[], ta text[], bo boolean)"
    )
    image = {
        "pk": {"S": "k"},
        "si": {"N": "-32768"},
        "nu": {"N": "12345678.9"},
        "re": {"N": "1.5"},
        "dp": {"N": "0.1"},
        "vc": {"S": "☃☃☃☃"},
        "d": {"S": "20240229"},
        "ts": {"S": "2024-02-29T23:30:00.1234567+01:00"},
        "u": {"S": "{12345678123456781234567812345678}"},
        "j": {"M": {"b": {"N": "1E+125"}, "a": {"SS": ["y", "x"]}}},
        "ip": {"S": "2001:db8::1"},
        "net": {"S": "10.1.2.3/8"},
        "ba": {"NS": ["3", "-9223372036854775808", "1"]},
        "ta": {"L": [{"S": 'a "quoted", {braced} \\ value'}, {"NULL": True}, {"S": "NULL"}]},
        "bo": {"S": "yes"},
    }
    op = compile_mapping(mapping(*columns, key=("pk",)))(RawChange("INSERT", {"pk": image["pk"]}, new_image=image))
    assert isinstance(op, Upsert), op
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY every_type ({}) FROM STDIN").format(names)) as copy:
            copy.write_row(op.values)
        cur.execute(sql.SQL("SELECT {}, j::text FROM every_type").format(names))
        row = cur.fetchone()
    assert row is not None
    assert row[:-1] == (
        "k",
        -32768,
        Decimal("12345678.90"),
        1.5,
        0.1,
        "☃☃☃",
        date(2024, 2, 29),
        datetime(2024, 2, 29, 22, 30, 0, 123457),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"a": ["x", "y"], "b": 1e125},
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_interface("10.1.2.3/8"),
        [-9223372036854775808, 1, 3],
        ['a "quoted", {braced} \\ value', None, "NULL"],
        True,
    )
    assert row[-1] == '{"a":["x","y"],"b":1E+125}'  # json keeps the exact text the codec wrote


_INT_TYPES = st.sampled_from(["smallint", "integer", "bigint"])
_NEAR_LIMITS = st.one_of(
    dynamo_numbers(),
    st.integers(min_value=0, max_value=8).flatmap(
        lambda places: st.decimals(min_value=-(10**8), max_value=10**8, places=places)
    ),
    st.sampled_from([2**15, 2**31, 2**63]).flatmap(lambda edge: st.integers(-edge - 2, edge + 1)).map(Decimal),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=_NEAR_LIMITS,
    precision=st.integers(min_value=1, max_value=40),
    scale=st.integers(min_value=0, max_value=12),
    int_type=_INT_TYPES,
)
def test_the_codec_accepts_exactly_what_postgresql_stores_unchanged(
    conn: psycopg.Connection[Any], number: Decimal, precision: int, scale: int, int_type: str
) -> None:
    """For numeric(p,s) and the integer types: the codec accepts a number if and only if PostgreSQL stores it
    without error and without changing its value (PostgreSQL's casts round silently; the codec must not)."""
    scale = min(scale, precision)
    for type_text in (f"numeric({precision},{scale})", int_type):
        to_sql = make_converter(parse_type(type_text))
        try:
            to_sql(number)
            accepted = True
        except Reject:
            accepted = False
        try:
            with conn.transaction():
                row = conn.execute(
                    sql.SQL("SELECT %s::numeric::{} = %s::numeric").format(sql.SQL(type_text)), (number, number)
                ).fetchone()
            unchanged = row is not None and row[0] is True
        except psycopg.errors.NumericValueOutOfRange:
            unchanged = False
        event(f"{type_text.split('(')[0]} accepted={accepted}")
        assert accepted == unchanged, (type_text, number)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=8))
def test_the_codec_accepts_exactly_the_text_postgresql_stores_unchanged(
    conn: psycopg.Connection[Any], text: str
) -> None:
    """varchar(5) and text: accepted if and only if PostgreSQL stores the string as read (NUL, length, unicode)."""
    conn.execute("CREATE TABLE IF NOT EXISTS texts (v varchar(5), t text)")
    for type_text, column in (("varchar(5)", "v"), ("text", "t")):
        try:
            make_converter(parse_type(type_text))(text)
            accepted = True
        except Reject:
            accepted = False
        try:
            with conn.transaction():
                stored = conn.execute(
                    sql.SQL("INSERT INTO texts ({0}) VALUES (%s) RETURNING {0}").format(sql.Identifier(column)), (text,)
                ).fetchone()
            unchanged = stored is not None and stored[0] == text
        except (psycopg.errors.StringDataRightTruncation, psycopg.DataError):
            unchanged = False
        event(f"{type_text} accepted={accepted}")
        assert accepted == unchanged, (type_text, text)


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    """ISO-8601 timestamps in the spellings producers use: T or space, Z, offsets or none, 0-9 fraction digits,
    basic (compact) or extended form."""
    moment = draw(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31)))
    digits = draw(st.integers(min_value=0, max_value=9))
    fraction = "" if digits == 0 else "." + draw(st.text("0123456789", min_size=digits, max_size=digits))
    zone = draw(st.sampled_from(["", "Z", "+00:00", "+05:30", "-08:00", "+01"]))
    if draw(st.booleans()):
        return moment.strftime("%Y%m%dT%H%M%S") + fraction + zone.replace(":", "")
    separator = draw(st.sampled_from(["T", " "]))
    return moment.strftime("%Y-%m-%d") + separator + moment.strftime("%H:%M:%S") + fraction + zone


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=iso_texts())
@example(text="2015-03-11T12:27:06.0000005Z")
@example(text="2015-03-11T12:27:06.0000015Z")
@example(text="2015-03-11T12:27:06.0000025+01:00")
@example(text="2015-03-11T23:59:59.9999995-05:00")
def test_timestamps_read_as_postgresql_reads_them_in_utc(conn: psycopg.Connection[Any], text: str) -> None:
    """timestamptz from ISO text: the codec's instant is PostgreSQL's own reading (session TimeZone UTC),
    including rounding past the microsecond."""
    conn.execute("SET TimeZone = 'UTC'")
    expected = conn.execute("SELECT %s::text::timestamptz", (text,)).fetchone()
    assert expected is not None
    assert make_converter(parse_type("timestamptz"))(text) == expected[0], text
