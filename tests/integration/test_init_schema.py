"""`ddbrepl init-schema` against a real PostgreSQL: create, no-op, add column, refuse a type change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from ddbrepl.cli import cli
from ddbrepl.state import migrate
from tests.conftest import ROOT

EMPLOYEES = (ROOT / "mappings" / "employees.yaml").read_text()


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def columns(pg: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = pg.execute(
        "SELECT column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
        "JOIN pg_attribute a ON a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass "
        "AND a.attname = c.column_name WHERE c.table_schema = 'public' AND c.table_name = %s", (table,))
    return dict(rows.fetchall())


def test_dry_run_without_database_matches_golden() -> None:
    result = run("--mappings", str(ROOT / "mappings" / "employees.yaml"), "init-schema", "--dry-run")
    assert result.exit_code == 0, result.output
    golden = (ROOT / "tests" / "golden" / "employees.sql").read_text()
    assert result.output.endswith(golden + "\n")  # the control schema (migrations) comes first
    assert '"Id" BIGINT NOT NULL' in result.output and 'PRIMARY KEY ("Id")' in result.output
    assert '"Name" VARCHAR(20)' in result.output and '"Department" VARCHAR(10)' in result.output
    assert "_ddb_seq NUMERIC(40, 0)" in result.output and "CREATE TABLE ddbrepl.checkpoints" in result.output


def test_apply_reapply_add_column_refuse_type_change(tmp_path: Path, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    mapping = tmp_path / "employees.yaml"
    mapping.write_text(EMPLOYEES)
    base = ["--mappings", str(mapping), "--database-url", pg_url]

    first = run(*base, "init-schema")
    assert first.exit_code == 0, first.output
    assert "applied" in first.output
    assert columns(pg, "Employees") == {
        "Id": "bigint", "Name": "character varying(20)", "Department": "character varying(10)",
        "_ddb_seq": "numeric(40,0)", "_ddb_synced_at": "timestamp with time zone"}
    latest = len(migrate.available())
    assert pg.execute("SELECT max(version) FROM ddbrepl.schema_version").fetchone() == (latest,)

    again = run(*base, "init-schema")
    assert again.exit_code == 0
    assert again.output.startswith("nothing to do")

    mapping.write_text(EMPLOYEES + "  - {name: Email, from: email, type: text}\n")
    plan = run(*base, "init-schema", "--dry-run")
    assert plan.output.strip() == 'ALTER TABLE public."Employees" ADD COLUMN "Email" TEXT;'
    added = run(*base, "init-schema")
    assert added.exit_code == 0 and "applied 1 statement" in added.output
    assert columns(pg, "Employees")["Email"] == "text"

    mapping.write_text(EMPLOYEES.replace("varchar(20)", "varchar(40)") + "  - {name: Email, from: email, type: text}\n")
    refused = run(*base, "init-schema")
    assert refused.exit_code == 1
    assert "refusing destructive schema changes" in refused.output
    assert "public.Employees.Name: type VARCHAR(20) -> VARCHAR(40)" in refused.output
    assert columns(pg, "Employees")["Name"] == "character varying(20)"

    forced = run(*base, "init-schema", "--allow-destructive")
    assert forced.exit_code == 0, forced.output
    assert columns(pg, "Employees")["Name"] == "character varying(40)"


def test_dropped_column_is_refused(tmp_path: Path, pg_url: str) -> None:
    mapping = tmp_path / "employees.yaml"
    mapping.write_text(EMPLOYEES)
    base = ["--mappings", str(mapping), "--database-url", pg_url]
    assert run(*base, "init-schema").exit_code == 0
    department = "  - {name: Department, from: empDepartment, type: varchar(10), default: NA}\n"
    mapping.write_text(EMPLOYEES.replace(department, ""))
    result = run(*base, "init-schema")
    assert result.exit_code == 1
    assert "Department: column no longer mapped" in result.output


def test_password_never_printed(tmp_path: Path) -> None:
    url = "postgresql://me:s3cr3t@127.0.0.1:1/nowhere"
    result = run("--mappings", str(ROOT / "mappings"), "--database-url", url, "init-schema")
    assert result.exit_code == 1
    assert "s3cr3t" not in result.output
    assert "cannot connect" in result.output


def test_every_shipped_mapping_applies_and_reapplies(pg_url: str, pg: psycopg.Connection[Any]) -> None:
    base = ["--mappings", str(ROOT / "mappings"), "--database-url", pg_url]
    first = run(*base, "init-schema")
    assert first.exit_code == 0, first.output
    assert run(*base, "init-schema").output.startswith("nothing to do")
    fks = pg.execute("SELECT conname, conenforced FROM pg_constraint WHERE contype = 'f' "
                     "AND connamespace = 'public'::regnamespace ORDER BY 1").fetchall()
    assert fks == [("app_order_items_order_id_fkey", False), ("app_orders_user_id_fkey", False),
                   ("profile_identifiers_profile_id_fkey", True)]
    indexes = {r[0] for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"profile_identifiers_attribute_value_idx", "app_orders_user_id_idx"} <= indexes
