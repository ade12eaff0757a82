"""`ddbrepl scaffold`: a draft mapping that sees every attribute, suggests types, and validates as is."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from ddbrepl.cli import cli
from ddbrepl.mapping.check import load_mappings
from tests.helpers import create_table, ddbrepl, put_items


def test_scaffold_drafts_a_valid_mapping_that_replicates(tmp_path: Path, aws_url: str, pg_url: str,
                                                         pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "WideTable", [("tenant", "S"), ("seq", "N")])
    put_items(aws_url, "WideTable", [
        {"tenant": "acme", "seq": Decimal(i), "name": f"n{i}", "price": Decimal(i) / 4, "count": Decimal(i),
         "active": i % 2 == 0, "born": "2020-01-02", "at": "2026-11-25T10:00:00Z", "tags": {"a", f"t{i}"},
         "doc": {"k": [Decimal(1), "x"]}, "odd key.with dots": "v", "2fa": True,
         **({"sometimes": "here"} if i % 3 == 0 else {}), "mixed": "s" if i % 2 else Decimal(i)}
        for i in range(30)])
    draft = tmp_path / "wide.yaml"
    result = CliRunner().invoke(cli, ["--endpoint-url", aws_url, "scaffold", "--table", "WideTable",
                                      "--sample", "25", "-o", str(draft)])
    assert result.exit_code == 0, result.output
    text = draft.read_text()
    assert "- {name: tenant, from: \"tenant\", type: text, primary_key: true}" in text
    assert "- {name: seq, from: \"seq\", type: bigint, primary_key: true}" in text
    assert '{name: price, from: "price", type: "numeric"}  # in 25/25 items (N 25)' in text
    assert '{name: active, from: "active", type: "boolean"}' in text
    assert '{name: born, from: "born", type: "date"}' in text
    assert '{name: at, from: "at", type: "timestamptz"}' in text
    assert '{name: tags, from: "tags", type: "text[]"}' in text
    assert '{name: doc, from: "doc", type: "jsonb"}' in text
    assert '{name: odd_key_with_dots, from: "\\"odd key.with dots\\"", type: "text"}' in text
    assert '{name: a_2fa, from: "2fa", type: "boolean"}' in text
    assert "# in 9/25 items (S 9)" in text  # `sometimes`, seen in every third item
    assert '{name: mixed, from: "mixed", type: "text"}' in text

    (mapping,) = load_mappings([draft])  # validates as is
    assert mapping.target.table == "wide_table"
    base = ["--endpoint-url", aws_url, "--database-url", pg_url, "--mappings", str(draft)]
    ddbrepl(*base, "init-schema")
    assert "30 items" in ddbrepl(*base, "backfill", "--table", "WideTable").stdout
    assert pg.execute('SELECT count(*), count(DISTINCT "odd_key_with_dots") FROM wide_table').fetchone() == (30, 1)
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)
