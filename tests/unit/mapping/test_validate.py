"""`ddbrepl validate`: every shipped mapping is valid; every broken fixture fails at the right place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddbrepl.cli import cli
from ddbrepl.mapping.check import check_paths, json_schema, load_mappings
from ddbrepl.mapping.model import SqlType
from tests.conftest import ROOT

BROKEN = ROOT / "tests" / "mappings" / "broken"

# file -> (line, col, words the first message must contain)
EXPECTED: dict[str, tuple[int, int, str]] = {
    "bad_yaml.yaml": (5, 7, "YAML syntax error"),
    "unknown_key.yaml": (4, 1, "did you mean 'columns'"),
    "unknown_type.yaml": (6, 39, "did you mean varchar(20)"),
    "unmapped_key.yaml": (2, 30, "key attribute 'sk' is not mapped"),
    "duplicate_column.yaml": (7, 12, "collides with 'Name'"),
    "long_identifier.yaml": (6, 12, "is 65 bytes"),
    "bad_transform_for_type.yaml": (6, 57, "use timestamptz"),
    "text_transform_needs_parse.yaml": (9, 16, "add {parse: number}"),
    "unknown_transform.yaml": (6, 55, "'capitalize' is not a transform"),
    "bad_regex.yaml": (6, 64, "has no group"),
    "bad_identifier.yaml": (3, 17, "try 'user_profiles'"),
    "bad_path.yaml": (6, 24, "cannot parse attribute path"),
    "pk_not_key_attribute.yaml": (6, 25, "primary-key column 'email' reads 'Email', which is not a key attribute"),
    "bad_filter_event.yaml": (7, 20, "'UPDATE' is not one of"),
    "bad_condition.yaml": (8, 7, "exactly one of equals"),
    "wrong_version.yaml": (1, 10, "unsupported version 2"),
    "item_not_json.yaml": (6, 23, "store it in a jsonb column"),
    "child_without_key.yaml": (10, 7, "a child needs a primary-key column"),
    "overflow_on_text.yaml": (6, 53, "applies to varchar(n)"),
    "missing_columns.yaml": (1, 1, "missing required key 'columns'"),
    "reserved_column.yaml": (6, 12, "reserved for ddbrepl"),
    "unquoted_comma.yaml": (6, 49, 'quote the value, e.g. type: "numeric(12,2)"'),
}


def test_every_broken_fixture_is_listed() -> None:
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_mapping_fails_at_its_place(name: str) -> None:
    line, col, words = EXPECTED[name]
    result = CliRunner().invoke(cli, ["validate", str(BROKEN / name)])
    assert result.exit_code == 1, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"{BROKEN / name}:{line}:{col}: "), first
    assert words in first


def test_shipped_mappings_are_valid() -> None:
    result = CliRunner().invoke(cli, ["validate", str(ROOT / "mappings")])
    assert result.exit_code == 0, result.output
    assert "file(s) valid" in result.output


def test_all_problems_of_all_files_in_one_run() -> None:
    result = CliRunner().invoke(cli, ["validate", str(BROKEN), str(ROOT / "mappings")])
    assert result.exit_code == 1
    reported = {line.split(":", 1)[0] for line in result.output.splitlines() if ".yaml:" in line}
    assert reported == {str(BROKEN / n) for n in EXPECTED}


def test_json_output_for_machines() -> None:
    result = CliRunner().invoke(cli, ["validate", "--output", "json", str(BROKEN / "unknown_key.yaml")])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False
    assert doc["problems"][0] == {"file": str(BROKEN / "unknown_key.yaml"), "line": 4, "column": 1,
                                  "message": "unknown key 'colums'; did you mean 'columns'?"}


def test_missing_path_and_usage_error() -> None:
    assert CliRunner().invoke(cli, ["validate", "/nonexistent/x.yaml"]).exit_code == 1
    assert CliRunner().invoke(cli, ["validate", "--output", "xml"]).exit_code == 2


def test_employees_model() -> None:
    (m,) = load_mappings([ROOT / "mappings" / "employees.yaml"])
    assert (m.source_table, m.source_key, str(m.target)) == ("Employees", ("Id",), "public.Employees")
    assert [(c.name, c.source.text, c.sql_type.render()) for c in m.columns] == [
        ("Id", "Id", "bigint"), ("Name", "empName", "varchar(20)"), ("Department", "empDepartment", "varchar(10)")]
    assert m.columns[1].on_overflow == "truncate"
    assert m.columns[2].default == "NA"
    assert [c.name for c in m.key_columns] == ["Id"]
    assert m.columns[0].sql_type == SqlType("bigint")


def test_two_mappings_cannot_write_one_table(tmp_path: Path) -> None:
    text = (ROOT / "mappings" / "employees.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    other = text.replace("table: Employees                 # PostgreSQL", "table: employees #")
    (tmp_path / "b.yaml").write_text(other)
    _, problems = check_paths([tmp_path])
    assert any("already written by mapping 'a'" in p.message for p in problems)


def test_key_pinned_by_filter_need_not_be_mapped(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        "version: 1\nsource: {table: App, key: [pk, sk]}\ntarget: {table: users}\n"
        "columns:\n  - {name: user_id, from: pk, type: bigint, primary_key: true, "
        "transform: [{strip_prefix: 'USER#'}, {parse: number}]}\n"
        "filter:\n  where:\n    - {attribute: sk, equals: PROFILE}\n")
    models, problems = check_paths([tmp_path])
    assert problems == []
    assert models[0].filter is not None and models[0].filter.where[0].value == "PROFILE"


def test_schema_command_prints_the_json_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json_schema()
