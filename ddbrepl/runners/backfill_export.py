"""`ddbrepl backfill --table T --source …`: load a DynamoDB export from S3 (full or incremental, JSON or ION).

``--source`` is an export folder (``s3://bucket/prefix/AWSDynamoDB/<id>/``), an export ARN, or ``export`` (start a
point-in-time export of the table now, wait for it, load it). The export's files become the run's units of work
in ``ddbrepl.backfill_segments`` (one row per file, named by its key), claimed and committed as in the scan
backfill, so a killed load resumes, other processes may share it, and a failed file is retried alone by a re-run.

**Full export.** Rows are backfill rows (``_ddb_seq`` NULL, guard "backfill": a row a stream change wrote and a
tombstoned key are left alone, so `tail` may run meanwhile). The export time becomes the run's point in time:
the first `tail` reads the stream from there (minus its margin). ``--restart`` re-seeds: in one transaction it
forgets the old run, empties the target tables (stream-written rows would otherwise survive the load, and rows
deleted meanwhile would linger) and forgets the table's stream checkpoints (see ``state/reseed.py``) — the
recovery when `tail` fell more than 24 h behind (docs/recovery.md). Stop `tail` for the table first.

**Incremental export.** Applied only on top of a finished run whose point in time lies inside its window
(``exportFromTime`` ≤ point in time < ``exportToTime``), else refused: loading it on anything else would leave a
gap or step back in time. Each key's newest change in the window is applied (see ``export_files``) with the same
"backfill" guard: incremental changes carry no stream sequence number, so they may replace and delete backfill
rows, which they are newer than, but never a row a stream change wrote (`tail` holds that key's newer truth, and
WriteTimestampMicros cannot be compared with sequence numbers). The run then moves to the incremental export, and
its point in time to ``exportToTime``; the next incremental export chains on from there.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ddbrepl.errors import ConfigError, Fatal
from ddbrepl.progress import Reporter
from ddbrepl.runners.backfill_common import Summary, finish, raise_first, run_workers, tuned_gc
from ddbrepl.runners.common import TablePlan, aws_config, one_table, open_state
from ddbrepl.runners.export_files import FileLoader, latest_changes
from ddbrepl.runners.export_procs import run_processes
from ddbrepl.settings import Settings
from ddbrepl.sink import reset as sink_reset
from ddbrepl.sources.aws import dynamodb_client, s3_client
from ddbrepl.sources.s3export import ExportInfo, ExportProgress, describe_export, locate_export, start_export
from ddbrepl.state import backfills, reseed, tombstones

if TYPE_CHECKING:
    import psycopg
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
DEFAULT_WORKERS = 4
CHUNK = 2_000
"""Changes per transaction: a set-based apply costs a few milliseconds a batch, and a smaller chunk keeps memory
flat (workers x 4 chunks in flight: being read, queued, looked ahead at, applied)."""


def backfill_export(settings: Settings, table: str, source: str, *, export_bucket: str | None = None,
                    export_prefix: str | None = None, workers: int | None = None, processes: int | None = None,
                    restart: bool = False, progress: bool = True, chunk_size: int = CHUNK, export_poll_s: float = 3.0,
                    export_timeout_s: float | None = None) -> Summary:
    """Load the export ``source`` into every mapping of ``table``; resume an unfinished load of the same export.

    ``workers`` files load at once (threads), spread over ``processes`` processes (this one included) for a full
    export; an incremental one loads in this process (its per-key winners stay in memory here). Returns the
    summary; ``summary.failed`` lists files that could not be read (the run then stays unfinished and a re-run
    retries only them). Raises ConfigError/Fatal/SourceError for what must stop the whole load.
    """
    plan = one_table(settings, table)
    summary = Summary(table, unit="file")
    aws = aws_config(settings)
    s3 = s3_client(aws)
    with open_state(settings) as conn:
        run = backfills.get(conn, table)
    if source == "export" and not restart and run is not None:
        if run.finished_at is not None:
            return _already_done(summary, run)
        if run.kind != "export" or not run.source:
            raise Fatal(f"an unfinished {run.kind} backfill of {table!r} exists",
                        "finish it with the same command, or pass --restart to load a new export instead")
        source = run.source  # resume the export this run began with; start no other
    info = _resolve(settings, s3, table, source, export_bucket, export_prefix, progress, export_poll_s,
                    export_timeout_s, run)
    summary.source = info.url
    with open_state(settings) as conn, conn.transaction():
        run = backfills.get(conn, table)
        if run is not None and run.source == info.url and not restart:
            if run.finished_at is not None:
                return _already_done(summary, run)
            log.info("resuming the load of %s into %s", info.url, table)
        elif info.incremental:
            _begin_incremental(conn, plan, info, run, restart)
        else:
            _begin_full(conn, plan, info, run, restart)
        backfills.clear_failures(conn, table)
        run = backfills.get(conn, table)
        assert run is not None
        todo = [s for s in backfills.segments(conn, table) if not s.done]
    summary.point_in_time = run.point_in_time
    n_workers = max(1, min(len(todo), workers or DEFAULT_WORKERS))
    with tuned_gc(), Reporter(f"backfill {table} from export", info.item_count, enabled=progress) as reporter:
        winners = None
        if info.incremental and todo:
            winners = latest_changes(s3, info, plan.mappings[0].source_key, n_workers)
            log.info("incremental export %s: %d keys changed", info.url, len(winners))
        loader = FileLoader(settings, plan, info, reporter.advance, chunk_size=chunk_size, winners=winners)
        if processes is None:  # measured (bench/backfill_s3.py): conversion is CPU-bound, one process per CPU
            processes = os.cpu_count() or 1
        n_procs = 1 if winners is not None else max(1, min(processes, n_workers))
        if n_procs > 1:
            threads = max(1, n_workers // n_procs)
            out = run_processes(settings, table, info, loader, processes=n_procs, threads=threads,
                                chunk_size=chunk_size, advance=reporter.advance)
            summary.segments, errors, stats, failed = out.finished, out.errors, out.stats, out.failed
        else:
            summary.segments, errors = run_workers(n_workers, loader.run_worker, name="export")
            stats, failed = loader.stats, loader.failed
        summary.items, summary.seconds, summary.stats = reporter.count, reporter.elapsed, stats
    raise_first(table, errors)
    summary.failed = tuple(failed[s] for s in sorted(failed))
    if not summary.failed:
        summary.finished = finish(settings, plan)
    return summary


def _already_done(summary: Summary, run: backfills.Run) -> Summary:
    summary.already_done, summary.items, summary.point_in_time = True, run.items, run.point_in_time
    summary.source = run.source
    return summary


def _resolve(settings: Settings, s3: S3Client, table: str, source: str, bucket: str | None, prefix: str | None,
             progress: bool, poll_s: float, timeout_s: float | None, run: backfills.Run | None) -> ExportInfo:
    """The export ``source`` names: a folder, an ARN, or a new export of ``table``."""
    if source.startswith("s3://"):
        return locate_export(s3, source, fallback_time=run.point_in_time if run and run.source == source else None)
    if source.startswith("arn:"):
        return describe_export(dynamodb_client(aws_config(settings)), s3, source)
    if source != "export":
        raise ConfigError(f"--source {source!r} is not an export",
                          "use s3://bucket/prefix/AWSDynamoDB/<export id>/, an export ARN, or `export`")
    if not bucket:
        raise ConfigError("--source export needs --export-bucket", "name the S3 bucket the export is written to")
    return start_export(dynamodb_client(aws_config(settings)), s3, table, bucket, prefix=prefix,
                        progress=_export_progress(table, progress), poll_s=poll_s, timeout_s=timeout_s)


def _export_progress(table: str, enabled: bool) -> Callable[[ExportProgress], None]:
    def report(state: ExportProgress) -> None:
        log.info("export of %s: %s after %.0fs", table, state.status, state.elapsed_s)
        if enabled:  # a plain line, like progress.Reporter's: exports take minutes to hours
            items = f", {state.item_count:,} items" if state.item_count is not None else ""
            print(f"export of {table}: {state.status} after {state.elapsed_s:.0f}s{items}", file=sys.stderr,
                  flush=True)

    return report


def _begin_full(conn: psycopg.Connection[Any], plan: TablePlan, info: ExportInfo, run: backfills.Run | None,
                restart: bool) -> None:
    table = plan.source_table
    if run is not None and not restart:
        what = f"{run.kind} backfill" + (f" from {run.source}" if run.source else "")
        if run.finished_at is None:
            raise Fatal(f"an unfinished {what} of {table!r} exists",
                        "finish it with the same --source, or pass --restart to load this export instead")
        raise Fatal(f"{table!r} was already backfilled ({what}, point in time "
                    f"{run.point_in_time:%Y-%m-%d %H:%M:%S}Z)",
                    "pass --restart to re-seed it from this export (stop `tail` for the table first)")
    if restart:
        backfills.reset(conn, table)
        sink_reset.truncate(conn, plan.mappings)
        tombstones.clear(conn, plan.target_tables)
        forgotten = reseed.forget_stream_positions(conn, table)
        log.warning("re-seeding %s: target tables emptied, %d stream checkpoint(s) forgotten", table, forgotten)
    _start(conn, table, info, info.export_time)


def _begin_incremental(conn: psycopg.Connection[Any], plan: TablePlan, info: ExportInfo,
                       run: backfills.Run | None, restart: bool) -> None:
    table = plan.source_table
    if restart:
        raise ConfigError("--restart does not apply to an incremental export",
                          "re-seed from a full export (--source export --restart), then load incremental ones")
    if run is None or run.finished_at is None:
        raise Fatal(f"incremental export {info.url} needs a finished full backfill of {table!r} underneath",
                    "load the full export it follows first and let it finish, then load this one")
    after: datetime = run.point_in_time
    begins = info.export_from_time
    if begins is not None and begins > after:
        raise Fatal(f"incremental export {info.url} starts at {begins:%Y-%m-%d %H:%M:%S}Z, after the loaded point "
                    f"in time {after:%Y-%m-%d %H:%M:%S}Z: changes in between would be missing",
                    "export the increment from the loaded point in time (or re-seed with a full export)")
    if info.export_time <= after:
        raise Fatal(f"incremental export {info.url} ends at {info.export_time:%Y-%m-%d %H:%M:%S}Z, not after "
                    f"the loaded point in time {after:%Y-%m-%d %H:%M:%S}Z: it would step back in time",
                    "load only increments newer than what was loaded")
    backfills.reset(conn, table)
    _start(conn, table, info, info.export_time)


def _start(conn: psycopg.Connection[Any], table: str, info: ExportInfo, point_in_time: datetime) -> None:
    backfills.start(conn, table, kind="export", source=info.url, point_in_time=point_in_time,
                    total_items=info.item_count, segments=[f.key for f in info.files])
    log.info("backfill of %s from %s started: %d file(s), point in time %s", table, info.url, len(info.files),
             point_in_time.isoformat())
