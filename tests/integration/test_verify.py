"""`ddbrepl verify`: no false drift on every type, exactly the rows changed behind ddbrepl's back, and --repair."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import psycopg

from tests.helpers import (
    MIXED,
    ROOT,
    SERIALIZER,
    create_table,
    ddb,
    ddbrepl,
    differences,
    expected_table,
    mixed_item,
    put_items,
)


def test_verify_reports_exact_drift_and_repairs_it(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(7)
    items = {i: mixed_item(i, rng) for i in range(400)}
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")], stream=None)
    put_items(aws_url, "Mixed", items.values())
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", MIXED]
    ddbrepl(*base, "init-schema")
    ddbrepl(*base, "backfill", "--table", "Mixed", "--no-progress")
    clean = ddbrepl(*base, "verify", "--table", "Mixed")
    assert "400 rows compared, in sync" in clean.stdout, clean.stdout

    # Behind ddbrepl's back (no tail running): one item changed, one deleted, one added.
    client = ddb(aws_url)
    changed = dict(items[10], title="changed", qty=Decimal(42))
    items[10] = changed
    client.put_item(TableName="Mixed", Item={k: SERIALIZER.serialize(v) for k, v in changed.items()})
    gone = items.pop(20)
    client.delete_item(TableName="Mixed", Key={"pk": {"S": gone["pk"]}, "sk": {"N": str(gone["sk"])}})
    added = mixed_item(1000, rng)
    items[1000] = added
    put_items(aws_url, "Mixed", [added])

    proc = ddbrepl(*base, "verify", "--table", "Mixed", "--output", "json", check=False)
    assert proc.returncode == 1
    (m,) = json.loads(proc.stdout)["mappings"]
    assert (m["compared"], m["missing"], m["different"], m["extra"]) == (400, 1, 1, 1)
    assert m["missing_keys"] == [{"pk": added["pk"], "sk": 1000}]
    assert m["extra_keys"] == [{"pk": gone["pk"], "sk": 20}]
    (diff,) = m["different_keys"]
    assert (diff["pk"], diff["sk"]) == (changed["pk"], 10)
    assert {"title", "qty", "doc"} <= set(diff["columns"]) <= {"title", "qty", "doc"}
    text = ddbrepl(*base, "verify", "--table", "Mixed", check=False)
    assert text.returncode == 1 and "DRIFT: 1 missing, 1 different, 1 extra" in text.stdout
    assert f"extra     {{'pk': '{gone['pk']}', 'sk': 20}}" in text.stdout

    repaired = ddbrepl(*base, "verify", "--table", "Mixed", "--repair")
    assert "repaired: 2 upserted, 1 deleted" in repaired.stdout
    ddbrepl(*base, "verify", "--table", "Mixed")  # exit 0: in sync again
    from tests.helpers import mixed_mapping

    mapping = mixed_mapping()
    expected_table(pg, mapping, items.values())
    assert differences(pg, mapping) == (0, 0)
    seqs = pg.execute("SELECT count(*) FROM mixed WHERE _ddb_seq IS NOT NULL").fetchone()
    assert seqs == (0,)

    sample = json.loads(ddbrepl(*base, "verify", "--table", "Mixed", "--sample", "50", "--output", "json").stdout)
    assert sample["sampled"] and sample["items"] == 50 and sample["mappings"][0]["compared"] == 50


def test_rows_the_stream_wrote_during_verify_are_neither_drift_nor_repaired(
        aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Employees", [("Id", "N")], stream=None)
    put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": f"name{i}"} for i in (1, 2, 3)])
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", str(ROOT / "mappings")]
    ddbrepl(*base, "init-schema")
    ddbrepl(*base, "backfill", "--table", "Employees", "--no-progress")
    # A stream change committed after verify began has a later _ddb_synced_at: simulated with a future time.
    pg.execute("""UPDATE "Employees" SET "Name" = 'newer', _ddb_synced_at = now() + interval '1 hour'
                  WHERE "Id" = 1""")
    pg.execute("""INSERT INTO "Employees" ("Id", "Name", "Department", _ddb_seq, _ddb_synced_at)
                  VALUES (99, 'fresh', 'NA', 5, now() + interval '1 hour')""")
    pg.execute("""UPDATE "Employees" SET "Name" = 'wrong' WHERE "Id" = 2""")  # real drift
    proc = ddbrepl(*base, "verify", "--table", "Employees", "--output", "json", check=False)
    (m,) = json.loads(proc.stdout)["mappings"]
    assert proc.returncode == 1
    assert (m["missing"], m["different"], m["extra"], m["in_flux"]) == (0, 1, 0, 2)
    assert m["different_keys"] == [{"Id": 2, "columns": ["Name"]}]
    ddbrepl(*base, "verify", "--table", "Employees", "--repair")
    rows = pg.execute('SELECT "Id", "Name" FROM "Employees" ORDER BY "Id"').fetchall()
    assert rows == [(1, "newer"), (2, "name2"), (3, "name3"), (99, "fresh")]
    out = ddbrepl(*base, "verify", "--table", "Employees")
    assert "3 rows compared, in sync, 2 changed by the stream while verifying (not compared)" in out.stdout


def test_child_rows_are_compared_and_repaired(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Profiles", [("profile_id", "S")], stream=None)
    put_items(aws_url, "Profiles", [
        {"profile_id": f"p{i}", "platform": "web",
         "metadata": {"email": f"u{i}@x.com", "phone": f"+1 {i}", "name": "not exploded"}} for i in range(6)])
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", str(ROOT / "mappings" / "profiles.yaml")]
    ddbrepl(*base, "init-schema")
    ddbrepl(*base, "backfill", "--table", "Profiles", "--no-progress")
    assert "6 rows compared, in sync" in ddbrepl(*base, "verify", "--table", "Profiles").stdout

    def identifiers() -> list[tuple[str, str, str]]:
        return pg.execute("SELECT profile_id, attribute, value FROM profile_identifiers ORDER BY 1, 2, 3").fetchall()

    expected = identifiers()
    assert len(expected) == 12
    # Behind ddbrepl's back: child rows lost, changed and added in PostgreSQL; one item changed in DynamoDB.
    pg.execute("DELETE FROM profile_identifiers WHERE profile_id = 'p1' AND attribute = 'email'")
    pg.execute("UPDATE profile_identifiers SET value = 'wrong' WHERE profile_id = 'p2' AND attribute = 'phone'")
    pg.execute("INSERT INTO profile_identifiers VALUES ('p3', 'cookie_id', 'c-stray')")
    pg.execute("INSERT INTO profile_identifiers SELECT 'p4', attribute, value FROM profile_identifiers "
               "WHERE profile_id = 'p4' AND attribute = 'email' ON CONFLICT DO NOTHING")  # a no-op: still in sync
    pg.commit()
    ddb(aws_url).update_item(TableName="Profiles", Key={"profile_id": {"S": "p5"}},
                             UpdateExpression="SET metadata.device_id = :d",
                             ExpressionAttributeValues={":d": {"S": "D-5"}})

    proc = ddbrepl(*base, "verify", "--table", "Profiles", "--output", "json", check=False)
    assert proc.returncode == 1
    (m,) = json.loads(proc.stdout)["mappings"]
    assert (m["compared"], m["missing"], m["different"], m["extra"]) == (6, 0, 4, 0)
    assert {d["profile_id"]: d["columns"] for d in m["different_keys"]} == {
        "p1": ["profile_identifiers"], "p2": ["profile_identifiers"], "p3": ["profile_identifiers"],
        "p5": ["metadata", "profile_identifiers"]}

    assert "repaired: 4 upserted, 0 deleted" in ddbrepl(*base, "verify", "--table", "Profiles", "--repair").stdout
    assert "6 rows compared, in sync" in ddbrepl(*base, "verify", "--table", "Profiles").stdout
    assert identifiers() == sorted([*expected, ("p5", "device_id", "d-5")])


def test_a_sampled_verify_finds_extra_rows_by_looking_their_items_up(
        aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(11)
    items = [mixed_item(i, rng) for i in range(300)]
    create_table(aws_url, "Mixed", [("pk", "S"), ("sk", "N")], stream=None)
    put_items(aws_url, "Mixed", items)
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", MIXED]
    ddbrepl(*base, "init-schema")
    ddbrepl(*base, "backfill", "--table", "Mixed", "--no-progress")
    client = ddb(aws_url)
    gone = items[::12]  # 25 items deleted behind ddbrepl's back
    for item in gone:
        client.delete_item(TableName="Mixed", Key={"pk": {"S": item["pk"]}, "sk": {"N": str(item["sk"])}})

    few = json.loads(ddbrepl(*base, "verify", "--table", "Mixed", "--sample", "40", "--output", "json",
                             check=False).stdout)["mappings"][0]
    assert few["extra_sampled"] == 40 and few["extra"] <= 40
    every = ddbrepl(*base, "verify", "--table", "Mixed", "--sample", "1000", "--output", "json", check=False)
    assert every.returncode == 1
    (m,) = json.loads(every.stdout)["mappings"]
    assert (m["extra_sampled"], m["extra"], m["missing"], m["different"]) == (300, 25, 0, 0)
    assert sorted((k["pk"], k["sk"]) for k in m["extra_keys"]) == sorted((i["pk"], int(i["sk"])) for i in gone)

    repaired = ddbrepl(*base, "verify", "--table", "Mixed", "--sample", "1000", "--repair")
    assert "repaired: 0 upserted, 25 deleted" in repaired.stdout
    assert pg.execute("SELECT count(*) FROM mixed").fetchone() == (275,)
    assert "275 rows compared, in sync" in ddbrepl(*base, "verify", "--table", "Mixed").stdout


def test_a_sampled_verify_says_why_it_cannot_look_rows_up(aws_url: str, pg_url: str) -> None:
    create_table(aws_url, "logfile", [("PK", "S")], stream=None)
    put_items(aws_url, "logfile", [{"PK": "request#1", "GSI_1_PK": "host#10.0.0.1", "bytessent": Decimal(5),
                                    "date": "2009-07-22", "hourofday": "3", "method": "GET", "url": "/x"}])
    base = ["--endpoint-url", aws_url, "--database-url", pg_url,
            "--mappings", str(ROOT / "mappings" / "access_log.yaml")]
    ddbrepl(*base, "init-schema")
    ddbrepl(*base, "backfill", "--table", "logfile", "--no-progress")
    out = ddbrepl(*base, "verify", "--table", "logfile", "--sample", "10").stdout
    assert "1 rows compared, in sync" in out
    assert "extra rows not sampled: no column holds key attribute 'PK' unchanged" in out
