"""The `ddbrepl` command line: options -> Settings -> one runner call -> exit code. Nothing else lives here.

Exit codes: 0 success, 1 failure or findings (invalid mapping, drift), 2 usage error (click's own).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ddbrepl import __version__, logs, runners
from ddbrepl.db import mask
from ddbrepl.errors import DdbreplError
from ddbrepl.settings import Settings, resolve


class _Group(click.Group):
    """Turns every DdbreplError into one clear message and exit 1; a password never reaches the terminal."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DdbreplError as exc:
            click.echo(mask(f"error: {exc}"), err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ddbrepl")
@click.option("--mappings", "mappings", multiple=True, type=click.Path(path_type=Path),
              help="Mapping file or folder (repeatable). [default: ./mappings, or DDBREPL_MAPPINGS]")
@click.option("--database-url", envvar=None, help="PostgreSQL URL. [default: DDBREPL_DATABASE_URL, then DATABASE_URL]")
@click.option("--endpoint-url", help="DynamoDB/Streams/S3 endpoint (moto, DynamoDB Local). AWS_ENDPOINT_URL* work too.")
@click.option("--region", help="AWS region. [default: the boto3 chain]")
@click.option("--profile", help="AWS profile (SSO and roles work through the boto3 chain).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Log line format.")
@click.pass_context
def cli(ctx: click.Context, mappings: tuple[Path, ...], database_url: str | None, endpoint_url: str | None,
        region: str | None, profile: str | None, verbose: int, log_format: str) -> None:
    """Replicate DynamoDB tables into PostgreSQL, declaratively."""
    logs.configure(verbose, log_format)
    ctx.obj = resolve(mappings=mappings, database_url=database_url, endpoint_url=endpoint_url, region=region,
                      profile=profile, verbose=verbose, log_format=log_format)


@cli.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of a mapping file (for editors and CI)."""
    from ddbrepl.mapping.check import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def validate_cmd(settings: Settings, paths: tuple[Path, ...], output: str) -> None:
    """Check mapping files offline: every problem as path:line:col. Exit 1 if any is invalid."""
    from ddbrepl.runners.validate import validate

    report = validate(paths or settings.mappings)
    click.echo(report.render_json() if output == "json" else report.render(),
               err=not report.ok and output == "text")
    sys.exit(0 if report.ok else 1)


@cli.command("init-schema")
@click.option("--table", "tables", multiple=True, help="Only mappings of this DynamoDB table (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the SQL; touch nothing (works without a database).")
@click.option("--allow-destructive", is_flag=True, help="Apply type changes, dropped columns, new primary keys.")
@click.pass_obj
def init_schema_cmd(settings: Settings, tables: tuple[str, ...], dry_run: bool, allow_destructive: bool) -> None:
    """Create or evolve the target tables and the control schema from the mappings."""
    from ddbrepl.runners.init_schema import init_schema

    click.echo(init_schema(settings, tables=tables, dry_run=dry_run, allow_destructive=allow_destructive).render())


@cli.command("backfill")
@click.option("--table", required=True, help="The DynamoDB table to load (every mapping that reads it).")
@click.option("--segments", type=click.IntRange(1, 1_000_000),
              help="Parallel-scan TotalSegments. [default: from the table's size]")
@click.option("--workers", type=click.IntRange(1, 256), help="Segments loaded at once by this process. [default: 8]")
@click.option("--restart", is_flag=True, help="Forget an earlier run and load the table again.")
@click.option("--max-rcu", type=click.FloatRange(min=0.1), help="Cap on read capacity units consumed per second.")
@click.option("--page-limit", type=click.IntRange(1), help="Items evaluated per Scan call (DynamoDB's Limit).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on a terminal, periodic lines otherwise.")
@click.pass_obj
def backfill_cmd(settings: Settings, table: str, segments: int | None, workers: int | None, restart: bool,
                 max_rcu: float | None, page_limit: int | None, progress: bool) -> None:
    """Load a table from a parallel scan; resumable, and shareable by several processes."""
    from ddbrepl.runners.backfill import backfill

    summary = backfill(settings, table, segments=segments, workers=workers, restart=restart, max_rcu=max_rcu,
                       page_limit=page_limit, progress=progress)
    click.echo(summary.render())


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ddbrepl")


__all__ = ["cli", "main", "runners"]
