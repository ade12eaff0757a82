"""Lambda-style events: table from the ARN, records to changes, and the dry-run preview (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ddbrepl.errors import ConfigError, SourceError
from ddbrepl.runners.common import TablePlan, table_plans
from ddbrepl.runners.events import match_plans, parse_records, preview, render_preview, table_of
from ddbrepl.settings import Settings
from ddbrepl.sources.secrets import database_url
from tests.helpers import ROOT

MIXED = ROOT / "tests" / "mappings" / "mixed"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Mixed/stream/2026-11-25T00:00:00.000"


def plans() -> list[TablePlan]:
    return table_plans(Settings(mappings=(MIXED,)))


def rec(seq: str, name: str, image: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Keys": {"pk": {"S": "a"}, "sk": {"N": "1"}}, "SequenceNumber": seq,
                            "ApproximateCreationDateTime": 1764028800.0}
    if image is not None:
        body["NewImage"] = image
    return {"eventName": name, "eventSourceARN": ARN, "dynamodb": body, **extra}


def test_table_of() -> None:
    assert table_of(ARN) == "Mixed"
    assert table_of("arn:aws:dynamodb:us-east-1:1:table/Orders") == "Orders"
    assert table_of("stream-ARN") is None


def test_parse_records_groups_by_table_in_order_and_decodes_lambda_fields() -> None:
    ttl = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    event = {"Records": [rec("300000000000000000000001", "INSERT", {"pk": {"S": "a"}, "sk": {"N": "1"}}),
                         {**rec("2", "REMOVE", None, userIdentity=ttl),
                          "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Other/stream/x"},
                         rec("300000000000000000000003", "REMOVE", None)]}
    groups = parse_records(event)
    assert [(g.table, [c.sequence for c in g.changes]) for g in groups] == [
        ("Mixed", [300000000000000000000001, 300000000000000000000003]), ("Other", [2])]
    assert groups[0].changes[0].approx_time == datetime(2025, 11, 25, tzinfo=UTC)
    assert groups[1].changes[0].ttl_delete
    (only,) = parse_records(event, table="Mixed")
    assert len(only.changes) == 3
    with pytest.raises(ConfigError, match="Other"):
        match_plans(plans(), groups)


@pytest.mark.parametrize("event", [{}, {"Records": [{"eventName": "INSERT"}]},
                                   {"Records": [rec("x", "INSERT", None)]},
                                   {"Records": [{**rec("1", "INSERT", None), "eventSourceARN": "nope"}]}])
def test_parse_records_refuses_malformed_events(event: dict[str, Any]) -> None:
    with pytest.raises(SourceError):
        parse_records(event)


def test_preview_shows_rows_deletes_and_dead_letters() -> None:
    image = {"pk": {"S": "a"}, "sk": {"N": "1"}, "blob": {"B": "AAEC/w=="}, "tags": {"SS": ["b", "a"]},
             "qty": {"N": "1.5"}}
    event = {"Records": [rec("1", "INSERT", {**image, "qty": {"N": "7"}}), rec("2", "MODIFY", image),
                         rec("3", "REMOVE", None)]}
    (pv,) = preview(plans(), parse_records(event))
    assert pv.counts() == {"upsert": 1, "delete": 1, "dead_letter": 1}
    upsert, dead, delete = pv.ops
    assert upsert["row"]["blob"] == "\\x000102ff" and upsert["row"]["tags"] == ["a", "b"]
    assert upsert["row"]["qty"] == 7 and upsert["row"]["doc"]["tags"] == ["a", "b"]
    assert dead["column"] == "qty" and dead["sequence"] == "2"
    assert delete == {"op": "delete", "event": "REMOVE", "sequence": "3", "soft": False,
                      "key": {"pk": "a", "sk": 1}}
    text = render_preview([pv])
    assert text.splitlines()[0] == "mixed -> public.mixed: 1 upsert(s), 1 delete(s), 1 dead letter(s)"
    json.dumps([pv.ops])  # JSON-ready


def test_database_url_from_a_secret() -> None:
    secret = {"username": "app", "password": "p@ss:/word", "host": "db.example.com", "port": 6432,
              "dbname": "replica", "engine": "postgres"}
    assert database_url(json.dumps(secret)) == "postgresql://app:p%40ss%3A%2Fword@db.example.com:6432/replica"
    assert database_url(json.dumps({"username": "u", "host": "/tmp/sock"})) == "postgresql://u@%2Ftmp%2Fsock:5432/postgres"
    with pytest.raises(ConfigError, match="lacks host"):
        database_url(json.dumps({"username": "u", "password": "secret"}))
    with pytest.raises(ConfigError, match="not JSON"):
        database_url("postgresql://x")
