"""Before `tail` reads a table's stream: find the stream, check it is the one we follow, and decide the hand-off.

- DescribeTable → ``LatestStreamArn``; no enabled stream is an error that says how to enable one.
- ``ddbrepl.streams`` remembers the ARN; a new ARN (stream disabled and re-enabled) is a gap: refuse unless the
  user accepts the new stream (after a new backfill).
- Hand-off from a backfill: the stream is read from TRIM_HORIZON and records created before the backfill's point
  in time minus :data:`HANDOFF_MARGIN` are skipped (the scan or export already holds their effect). A backfill
  older than the stream's 24 h retention with no stream progress yet cannot be continued: refuse with the fix.
- ``--from latest``: records created before the table was first followed are skipped. The cut-off is stored
  (``ddbrepl.streams.started_at``), unlike a LATEST iterator, so a restart cannot lose what came in between.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from ddbrepl.errors import DataLoss, SourceError
from ddbrepl.runners.common import TablePlan
from ddbrepl.runners.shard_worker import Feed
from ddbrepl.sources.scan import describe_table
from ddbrepl.state import backfills, checkpoints

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

StartFrom = Literal["trim-horizon", "latest"]
HANDOFF_MARGIN = timedelta(minutes=5)
"""Stream records this much older than the backfill's start are still applied: clocks and the 1 s rounding of
ApproximateCreationDateTime must not let a change slip between the scan and the stream."""
RETENTION = timedelta(hours=24)
LATEST_SLACK = timedelta(seconds=2)
"""ApproximateCreationDateTime is rounded down to the second: keep a little before the first start."""


def prepare(conn: psycopg.Connection[Any], dynamodb: DynamoDBClient, plan: TablePlan, *, start: StartFrom,
            accept_new_stream: bool, now: datetime | None = None) -> Feed:
    """Resolve one table's stream and hand-off, recording the followed ARN (inside the caller's transaction)."""
    now = now or datetime.now(UTC)
    table = plan.source_table
    info = describe_table(dynamodb, table)
    if not info.stream_enabled or not info.stream_arn:
        raise SourceError(
            f"table {table!r} has no enabled stream, so `tail` has nothing to read",
            hint=f"aws dynamodb update-table --table-name {table} --stream-specification "
                 "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES  (then `ddbrepl backfill --table "
                 f"{table}` to load what is already there)")
    view = info.stream_view_type or "NEW_AND_OLD_IMAGES"
    followed = checkpoints.follow(conn, table, info.stream_arn, view, accept_new=accept_new_stream)
    skip_before: datetime | None = None
    run = backfills.get(conn, table)
    if run is not None:
        if now - run.point_in_time > RETENTION and not checkpoints.has_progress(conn, table):
            raise DataLoss(
                f"the backfill of {table!r} is from {run.point_in_time:%Y-%m-%d %H:%M:%S}Z, older than the "
                "stream's 24 h retention, and the stream was never read since: changes in between are lost",
                hint=f"run `ddbrepl backfill --table {table} --restart`, then `ddbrepl tail` within 24 hours")
        skip_before = run.point_in_time - HANDOFF_MARGIN
    if start == "latest":
        first = followed.started_at - LATEST_SLACK
        skip_before = first if skip_before is None else max(skip_before, first)
    needs_items = plan.needs_items(view)
    if needs_items:
        log.info("stream of %s is %s: current items are read with BatchGetItem (consistent)", table, view)
    return Feed(plan=plan, arn=info.stream_arn, view_type=view, key_names=info.key_names, skip_before=skip_before,
                fetch_items=needs_items)
