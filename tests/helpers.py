"""Shared test helpers: DynamoDB tables on moto, sample items, and exact comparison in PostgreSQL."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
from boto3.dynamodb.types import TypeSerializer
from psycopg import sql

from ddbrepl.codec.rows import compile_mapping
from ddbrepl.mapping.check import load_mappings
from ddbrepl.mapping.model import Mapping
from ddbrepl.records import RawChange, Upsert

ROOT = Path(__file__).resolve().parent.parent
MIXED = str(ROOT / "tests" / "mappings" / "mixed")
EMPLOYEES = str(ROOT / "mappings" / "employees.yaml")
SERIALIZER = TypeSerializer()


def ddb(url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")


def create_table(url: str, name: str, keys: Sequence[tuple[str, str]], *, stream: str | None = "NEW_IMAGE") -> None:
    """Create ``name`` with ``keys`` = [(attr, S|N|B), …] (partition key first), optionally with a stream."""
    client = ddb(url)
    kwargs: dict[str, Any] = {}
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": "HASH" if i == 0 else "RANGE"} for i, (a, _) in enumerate(keys)],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in keys],
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )


def put_items(url: str, table: str, items: Iterable[dict[str, Any]]) -> None:
    """Write plain-Python items (Decimal numbers) with BatchWriteItem, retrying unprocessed ones."""
    client = ddb(url)
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        request = {table: batch[:]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        batch.clear()

    for item in items:
        batch.append({"PutRequest": {"Item": {k: SERIALIZER.serialize(v) for k, v in item.items()}}})
        if len(batch) == 25:
            flush()
    if batch:
        flush()


def mixed_item(i: int, rng: random.Random) -> dict[str, Any]:
    """One item of the Mixed table: every DynamoDB type, some attributes missing, some values to truncate."""
    item: dict[str, Any] = {"pk": f"user#{i % 97}", "sk": Decimal(i)}
    if rng.random() < 0.9:
        item["title"] = rng.choice(["short", "a much longer title", "ünïcødé ✓", ""])
    if rng.random() < 0.9:
        item["amount"] = Decimal(rng.choice(["0", "-0.5", "12345678901234567890.123456789012345678", "1E+100",
                                             str(rng.randint(-10**9, 10**9))]))
    if rng.random() < 0.8:
        item["qty"] = Decimal(rng.randint(-2**31, 2**31 - 1))
    item["active"] = rng.random() < 0.5
    if rng.random() < 0.7:
        item["tags"] = {f"t{rng.randint(0, 9)}" for _ in range(rng.randint(1, 4))}
    if rng.random() < 0.5:
        item["scores"] = {Decimal(rng.randint(0, 999)) / 10 for _ in range(rng.randint(1, 3))}
    if rng.random() < 0.4:
        item["blob"] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 16)))
    item["created"] = Decimal(1_700_000_000 + i)
    if rng.random() < 0.6:
        item["profile"] = {"city": rng.choice(["Accra", "Oslo", "Lima"]), "zip": Decimal(rng.randint(1, 99999)),
                           "nested": {"deep": [Decimal(1), "two", {"three": None}]}}
    if rng.random() < 0.5:
        item["items"] = [{"sku": f"SKU-{rng.randint(1, 999)}", "n": Decimal(rng.randint(1, 5))}]
    if rng.random() < 0.1:
        item["nothing"] = None
    return item


def mixed_mapping() -> Mapping:
    (m,) = load_mappings([ROOT / "tests" / "mappings" / "mixed"])
    return m


def expected_table(conn: psycopg.Connection[Any], mapping: Mapping, items: Iterable[dict[str, Any]],
                   name: str = "expected") -> int:
    """Convert ``items`` with the mapping's codec and COPY them into a fresh table shaped like the target."""
    conv = compile_mapping(mapping)
    cols = [c.name for c in mapping.columns]
    target = sql.Identifier(mapping.target.schema, mapping.target.table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, cols)), target))
    n = 0
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
        for item in items:
            image = {k: SERIALIZER.serialize(v) for k, v in item.items()}
            op = conv(RawChange("INSERT", {k: image[k] for k in mapping.source_key}, image))
            assert isinstance(op, Upsert), op
            copy.write_row(op.values)
            n += 1
    return n


def differences(conn: psycopg.Connection[Any], mapping: Mapping, name: str = "expected") -> tuple[int, int]:
    """(rows in the target not in ``name``, rows in ``name`` not in the target): (0, 0) means exactly equal."""
    cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in mapping.columns)
    target = sql.Identifier(mapping.target.schema, mapping.target.table)
    q = "SELECT count(*) FROM (SELECT {c} FROM {a} EXCEPT ALL SELECT {c} FROM {b}) d"
    extra = conn.execute(sql.SQL(q).format(c=cols, a=target, b=sql.Identifier(name))).fetchone()
    missing = conn.execute(sql.SQL(q).format(c=cols, a=sql.Identifier(name), b=target)).fetchone()
    assert extra is not None and missing is not None
    return int(extra[0]), int(missing[0])


def cli_base(aws_url: str, pg_url: str, mappings: str) -> list[str]:
    """The global options every CLI call of a test passes: moto, the test's database, its mappings."""
    return ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", mappings]


def ddbrepl(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a child process (so that it can be killed like in production)."""
    proc = subprocess.run([sys.executable, "-m", "ddbrepl", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ddbrepl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_ddbrepl(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ddbrepl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
