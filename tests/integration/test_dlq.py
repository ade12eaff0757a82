"""Dead letters end to end: a varchar overflow is dead-lettered while its batch applies; after the column is
widened (mapping + init-schema) `dlq replay` applies it, never over a newer row; `dlq discard` drops letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import ddbrepl

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/People/stream/2026-11-25T00:00:00.000"
MAPPING = """\
version: 1
source: {{table: People, key: [Id]}}
target: {{table: people}}
columns:
  - {{name: id,   from: Id,   type: bigint,       primary_key: true}}
  - {{name: name, from: Name, type: varchar({n}), on_overflow: error}}
"""


def record(seq: int, name: str, ident: int, value: str) -> dict[str, Any]:
    return {"eventID": str(seq), "eventName": name, "eventSource": "aws:dynamodb", "eventSourceARN": ARN,
            "dynamodb": {"Keys": {"Id": {"N": str(ident)}}, "SequenceNumber": str(seq),
                         "NewImage": {"Id": {"N": str(ident)}, "Name": {"S": value}},
                         "StreamViewType": "NEW_IMAGE"}}


def write_events(path: Path, *records: dict[str, Any]) -> str:
    path.write_text(json.dumps({"Records": list(records)}))
    return str(path)


def test_overflow_dead_letter_then_widen_and_replay(pg_url: str, pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    maps = tmp_path / "mappings"
    maps.mkdir()
    (maps / "people.yaml").write_text(MAPPING.format(n=5))
    base = ["--database-url", pg_url, "--mappings", str(maps)]
    ddbrepl(*base, "init-schema")
    first = write_events(tmp_path / "1.json",
                         record(10, "INSERT", 1, "Ann"),
                         record(11, "INSERT", 2, "Bartholomew"),     # 11 > 5: dead letter
                         record(12, "INSERT", 3, "Constantinople"),  # dead letter, later superseded
                         record(13, "INSERT", 4, "Dee"),
                         record(14, "INSERT", 5, "E" * 60))          # too long even after widening
    out = ddbrepl(*base, "apply-events", first)
    assert "2 upserted" in out.stdout and "3 dead letter(s)" in out.stdout
    assert pg.execute("SELECT id, name FROM people ORDER BY id").fetchall() == [(1, "Ann"), (4, "Dee")]
    ddbrepl(*base, "apply-events", write_events(tmp_path / "2.json", record(20, "MODIFY", 3, "Cy")))

    listing = json.loads(ddbrepl(*base, "dlq", "list", "--output", "json").stdout)
    assert [(d["keys"], d["column"], d["origin"], d["attempts"]) for d in listing] == [
        ({"Id": {"N": "2"}}, "name", "lambda", 1), ({"Id": {"N": "3"}}, "name", "lambda", 1),
        ({"Id": {"N": "5"}}, "name", "lambda", 1)]
    assert "is 11 characters long, more than varchar(5) allows" in listing[0]["reason"]
    text = ddbrepl(*base, "dlq", "list", "--table", "People").stdout
    assert text.startswith("3 open dead letter(s)")

    # Replaying before the fix changes nothing but the attempt count.
    still = ddbrepl(*base, "dlq", "replay", "--table", "People", check=False)
    assert still.returncode == 1 and "3 still failing" in still.stdout
    assert pg.execute("SELECT count(*), min(attempts) FROM ddbrepl.dead_letters WHERE resolved_at IS NULL"
                      ).fetchone() == (3, 2)

    (maps / "people.yaml").write_text(MAPPING.format(n=40))
    proc = ddbrepl(*base, "init-schema", check=False)
    if proc.returncode != 0:  # widening may count as a type change for init-schema
        ddbrepl(*base, "init-schema", "--allow-destructive")
    replay = ddbrepl(*base, "dlq", "replay", "--table", "People", "--output", "json", check=False)
    result = json.loads(replay.stdout)
    assert replay.returncode == 1  # the 60-character name still fails
    assert (result["resolved"], result["applied"], result["superseded"]) == (2, 1, 1)
    assert [f["id"] for f in result["failing"]] == [listing[2]["id"]]
    rows = pg.execute("SELECT id, name, _ddb_seq FROM people ORDER BY id").fetchall()
    assert rows == [(1, "Ann", 10), (2, "Bartholomew", 11), (3, "Cy", 20), (4, "Dee", 13)]  # 3 kept its newer row
    letters = pg.execute("SELECT id, resolved_at IS NOT NULL, attempts FROM ddbrepl.dead_letters ORDER BY id"
                         ).fetchall()
    assert [(r[1], r[2]) for r in letters] == [(True, 2), (True, 2), (False, 3)]

    proc = ddbrepl(*base, "dlq", "discard", check=False)
    assert proc.returncode == 1 and "--id" in proc.stderr
    out = ddbrepl(*base, "dlq", "discard", "--id", str(listing[2]["id"]))
    assert out.stdout.strip() == "discarded 1 dead letter(s)"
    assert ddbrepl(*base, "dlq", "list").stdout.strip() == "no open dead letters"
    again = ddbrepl(*base, "dlq", "replay", "--id", str(listing[0]["id"]), check=False)
    assert again.returncode == 1 and f"not open dead letters: {listing[0]['id']}" in again.stdout
