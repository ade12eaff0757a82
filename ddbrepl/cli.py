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
@click.option("--source", help="Load a DynamoDB export instead of scanning: s3://bucket/prefix/AWSDynamoDB/<id>/, "
              "an export ARN, or `export` (start a point-in-time export now, wait, load it).")
@click.option("--export-bucket", help="With --source export: the S3 bucket to export to.")
@click.option("--export-prefix", help="With --source export: the S3 key prefix. [default: a fresh one]")
@click.option("--processes", type=click.IntRange(1, 256),
              help="With --source: processes sharing the files. [default: one per CPU, at most --workers]")
@click.pass_obj
def backfill_cmd(settings: Settings, table: str, segments: int | None, workers: int | None, restart: bool,
                 max_rcu: float | None, page_limit: int | None, progress: bool, source: str | None,
                 export_bucket: str | None, export_prefix: str | None, processes: int | None) -> None:
    """Load a table from a parallel scan or a DynamoDB export; resumable, and shareable by several processes.
    Exit 1 if some export files could not be read (a re-run retries only them)."""
    if source is None:
        from ddbrepl.runners.backfill import backfill

        summary = backfill(settings, table, segments=segments, workers=workers, restart=restart, max_rcu=max_rcu,
                           page_limit=page_limit, progress=progress)
    else:
        from ddbrepl.runners.backfill_export import backfill_export

        summary = backfill_export(settings, table, source, export_bucket=export_bucket,
                                  export_prefix=export_prefix, workers=workers, processes=processes,
                                  restart=restart, progress=progress)
    click.echo(summary.render())
    sys.exit(1 if summary.failed else 0)


def _emit(output: str, text: str, data: Any) -> None:
    """Print a report as text or as one JSON document."""
    click.echo(json.dumps(data, indent=2, default=str) if output == "json" else text)


_OUTPUT = click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Report format.")


@cli.group("dlq")
def dlq_cmd() -> None:
    """Dead letters: changes a mapping could not convert."""


@dlq_cmd.command("list")
@click.option("--table", help="Only dead letters of this DynamoDB table.")
@_OUTPUT
@click.pass_obj
def dlq_list_cmd(settings: Settings, table: str | None, output: str) -> None:
    """List open dead letters, oldest first."""
    from ddbrepl.runners.dlq import list_letters

    listing = list_letters(settings, table=table)
    _emit(output, listing.render(), listing.to_json())


@dlq_cmd.command("replay")
@click.option("--id", "ids", multiple=True, type=int, help="A dead letter id (repeatable).")
@click.option("--table", help="Every open dead letter of this DynamoDB table.")
@_OUTPUT
@click.pass_obj
def dlq_replay_cmd(settings: Settings, ids: tuple[int, ...], table: str | None, output: str) -> None:
    """Convert dead letters again with the current mappings and apply them. Exit 1 if some still fail."""
    from ddbrepl.runners.dlq import replay

    result = replay(settings, ids=ids, table=table)
    _emit(output, result.render(), result.to_json())
    sys.exit(0 if result.ok else 1)


@dlq_cmd.command("discard")
@click.option("--id", "ids", multiple=True, type=int, help="A dead letter id (repeatable).")
@click.option("--table", help="Every open dead letter of this DynamoDB table.")
@click.pass_obj
def dlq_discard_cmd(settings: Settings, ids: tuple[int, ...], table: str | None) -> None:
    """Delete dead letters for good."""
    from ddbrepl.runners.dlq import discard

    click.echo(f"discarded {discard(settings, ids=ids, table=table)} dead letter(s)")


@cli.command("apply-events")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--table", help="The DynamoDB table of every record. [default: from eventSourceARN]")
@click.option("--dry-run", is_flag=True, help="Print what each mapping would do; no database.")
@_OUTPUT
@click.pass_obj
def apply_events_cmd(settings: Settings, file: Path, table: str | None, dry_run: bool, output: str) -> None:
    """Apply a Lambda-style {"Records": [...]} stream event through the mappings."""
    from ddbrepl.runners.events import apply_events

    result = apply_events(settings, file, table=table, dry_run=dry_run)
    _emit(output, result.render(), result.to_json())


@cli.command("verify")
@click.option("--table", required=True, help="The DynamoDB table to compare (every mapping that reads it).")
@click.option("--repair", is_flag=True, help="Fix the drift found: upsert missing/different rows, delete extra.")
@click.option("--sample", type=click.IntRange(1), help="Compare only about N items (no extra-row check).")
@click.option("--segments", type=click.IntRange(1, 1_000_000), default=4, help="Parallel-scan TotalSegments.")
@_OUTPUT
@click.pass_obj
def verify_cmd(settings: Settings, table: str, repair: bool, sample: int | None, segments: int,
               output: str) -> None:
    """Compare DynamoDB with PostgreSQL row by row. Exit 1 on drift (after --repair: on drift left unfixed)."""
    from ddbrepl.runners.verify import verify

    report = verify(settings, table, repair=repair, sample=sample, segments=segments)
    _emit(output, report.render(), report.to_json())
    sys.exit(0 if report.ok else 1)


@cli.command("status")
@click.option("--table", "tables", multiple=True, help="Only this DynamoDB table (repeatable).")
@_OUTPUT
@click.pass_obj
def status_cmd(settings: Settings, tables: tuple[str, ...], output: str) -> None:
    """Per mapped table: backfill progress, shards, last sequence, lag, leases, dead letters, last error."""
    from ddbrepl.runners.status import status

    report = status(settings, tables)
    _emit(output, report.render(), report.to_json())


@cli.command("tail")
@click.option("--table", "tables", multiple=True,
              help="Only this DynamoDB table (repeatable). [default: every mapped table]")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on this port (pip install 'ddbrepl[metrics]').")
@click.option("--until-idle", is_flag=True, help="Exit 0 once every shard is caught up (tests, cron).")
@click.option("--from", "start", type=click.Choice(["trim-horizon", "latest"]), default="trim-horizon",
              help="Where a table followed for the first time starts (after a backfill: its point in time).")
@click.option("--worker-id", help="This worker's name in ddbrepl.leases. [default: host:pid]")
@click.option("--lease-seconds", type=click.FloatRange(min=1.0), default=30.0,
              help="A worker that stops renewing loses its shards after this long.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, help="Shards read and applied at once.")
@click.option("--accept-new-stream", is_flag=True,
              help="Follow a table's new stream ARN (after disable/re-enable and a new backfill).")
@click.option("--progress/--no-progress", default=True,
              help="Live status line on a terminal, periodic lines otherwise.")
@click.pass_obj
def tail_cmd(settings: Settings, tables: tuple[str, ...], until_idle: bool, start: str, worker_id: str | None,
             lease_seconds: float, threads: int, accept_new_stream: bool, progress: bool,
             metrics_port: int | None) -> None:
    """Follow the tables' DynamoDB Streams and apply every change exactly once."""
    from ddbrepl.runners.tail import tail

    summary = tail(settings, tables, until_idle=until_idle, start="latest" if start == "latest" else "trim-horizon",
                   worker=worker_id, lease_seconds=lease_seconds, threads=threads,
                   accept_new_stream=accept_new_stream, progress=progress, metrics_port=metrics_port)
    click.echo(summary.render())


@cli.command("scaffold")
@click.option("--table", required=True, help="The DynamoDB table to describe and sample.")
@click.option("--sample", type=click.IntRange(1, 100_000), default=1000, help="Items to sample.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the draft here instead of printing it.")
@click.pass_obj
def scaffold_cmd(settings: Settings, table: str, sample: int, output: Path | None) -> None:
    """Write a draft mapping for an existing table: its keys and every attribute seen in a sample."""
    from ddbrepl.runners.scaffold import scaffold

    text = scaffold(settings, table, sample=sample)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}; check it with `ddbrepl validate {output}`", err=True)


@cli.command("demo")
@click.option("--keep", is_flag=True, help="Leave the local DynamoDB and PostgreSQL running; print how to use them.")
def demo_cmd(keep: bool) -> None:
    """The Employees story end to end on a local DynamoDB (moto) and PostgreSQL (embedded): no AWS, no database."""
    import os
    import threading

    from ddbrepl.runners.demo import demo

    for name, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo")):
        os.environ.setdefault(name, value)
    def wait_forever() -> None:
        threading.Event().wait()

    demo(click.echo, keep=keep, wait_forever=wait_forever)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ddbrepl")


__all__ = ["cli", "main", "runners"]
