"""Find, start and read DynamoDB exports to S3 (ExportTableToPointInTime).

Three ways in, one result (:class:`ExportInfo`):

- :func:`locate_export` from ``s3://bucket/prefix/AWSDynamoDB/<export id>/`` — or from ``s3://bucket/prefix/``
  when exactly one export folder lies under it;
- :func:`describe_export` from an export ARN (DescribeExport's ``ExportManifest`` is the summary's key);
- :func:`start_export` requests a point-in-time export, waits for it (progress callback), then locates it.

Then :func:`iter_file` streams each of ``ExportInfo.files`` as chunks of RawChange (see ``export_read``).

**AWS layout** (DynamoDB developer guide, "export output format"): ``manifest-summary.json`` (export time,
format, type, item count, ``manifestFilesS3Key``) and ``manifest-files.json`` (JSON Lines: ``itemCount``,
``md5Checksum``, ``etag``, ``dataFileS3Key``) in the export folder; data in ``data/`` below it, or in the
shared ``<prefix>/AWSDynamoDB/data/`` for incremental exports. ``manifestFilesS3Key`` and ``dataFileS3Key`` are full
object keys and are used as they are; only if the manifest-files key is missing as written and exists below
``s3Prefix`` are all keys taken as relative to ``s3Prefix`` (the AWS example is ambiguous on this point).

**moto layout** (moto 5.2, the emulator our tests run on): one ``data/<uuid>.gz`` object, no manifests, an
ARN that does not name the folder, no ``ExportManifest`` or ``ExportTime``, DynamoDB JSON whatever format was
asked. When a folder has no ``manifest-summary.json`` but has ``.gz`` objects under ``data/``, it is read as a
full DYNAMODB_JSON export with ``layout="moto"``: files from the listing, item counts unknown (not checked),
and ``export_time`` from DescribeExport's ``ExportTime`` or ``StartTime`` when given, else the time the
request was sent (:func:`start_export`), else the earliest data object's LastModified (moto writes it
milliseconds after its snapshot; the tail's margin covers that). An ARN without ``ExportManifest`` is
resolved through its ``S3Prefix`` only when exactly one manifest-less folder lies there, which is why
:func:`start_export` gives every export a fresh prefix by default. A folder with ``_started`` but no summary
is an AWS export still running and is refused.

Export time errs early, never late: a missing ``exportTime`` falls back to ``startTime`` (not ``endTime``),
because the tail replays from the export time minus a margin, and replaying too much is harmless (the
apply is idempotent) while starting too late loses changes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ddbrepl.errors import SourceError
from ddbrepl.sources.aws import error_code, translate
from ddbrepl.sources.export_manifest import (
    EXPORTS_DIR,
    SUMMARY,
    from_summary,
    get_json,
    moto_layout,
    single_folder,
)
from ddbrepl.sources.export_model import DataFile, ExportFormat, ExportInfo, ExportProgress
from ddbrepl.sources.export_read import CHUNK_CHANGES, iter_file

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

__all__ = [
    "CHUNK_CHANGES",
    "DataFile",
    "ExportInfo",
    "ExportProgress",
    "describe_export",
    "iter_file",
    "locate_export",
    "parse_s3_url",
    "start_export",
    "wait_export",
]

log = logging.getLogger(__name__)


ProgressCallback = Callable[[ExportProgress], None]


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/key`` into the bucket and the key prefix (no leading slash)."""
    if not url.startswith("s3://") or len(url) <= 5:
        raise SourceError(f"{url!r} is not an s3:// address", hint="use s3://bucket/prefix/AWSDynamoDB/<export id>/")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise SourceError(f"{url!r} names no bucket", hint="use s3://bucket/prefix/AWSDynamoDB/<export id>/")
    return bucket, key.lstrip("/")


def locate_export(s3: S3Client, url: str, *, fallback_time: datetime | None = None) -> ExportInfo:
    """Read the export at ``url``: an export folder, its ``manifest-summary.json``, or a prefix with one export.

    ``fallback_time`` is the export time to use for a moto-layout folder (see the module notes).
    """
    bucket, key = parse_s3_url(url)
    if key.endswith(SUMMARY):
        return from_summary(s3, bucket, key)
    parts = key.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] + "/" == EXPORTS_DIR and parts[-1] != "data":
        folder = "/".join(parts) + "/"
    else:
        folder = single_folder(s3, bucket, "/".join(parts) + "/" if key else "", require_manifestless=False)
    summary = get_json(s3, bucket, folder + SUMMARY, missing_ok=True)
    if summary is not None:
        return from_summary(s3, bucket, folder + SUMMARY, summary)
    return moto_layout(s3, bucket, folder, fallback_time)


def describe_export(
    dynamodb: DynamoDBClient, s3: S3Client, export_arn: str, *, requested_at: datetime | None = None
) -> ExportInfo:
    """Locate a COMPLETED export from its ARN through DescribeExport."""
    desc = _describe(dynamodb, export_arn)
    status = desc.get("ExportStatus")
    if status != "COMPLETED":
        raise SourceError(
            f"export {export_arn} is {status}"
            + (f" ({desc.get('FailureCode')}: {desc.get('FailureMessage')})" if status == "FAILED" else ""),
            hint="wait for it to complete, or start a new export with --source export",
        )
    bucket = desc["S3Bucket"]
    manifest = desc.get("ExportManifest")
    prefix = desc.get("S3Prefix") or ""
    if manifest:
        summary = get_json(s3, bucket, manifest, missing_ok=bool(prefix))
        if summary is None:  # the same doubt as manifestFilesS3Key: a full key, or relative to the prefix?
            manifest = f"{prefix.rstrip('/')}/{manifest}"
            summary = get_json(s3, bucket, manifest)
        return from_summary(s3, bucket, manifest, summary)
    # moto: no manifest and an ARN that does not name the folder; the prefix must hold exactly one export
    base = prefix.rstrip("/") + "/" if prefix else ""
    folder = single_folder(s3, bucket, base, require_manifestless=True)
    when = desc.get("ExportTime") or desc.get("StartTime") or requested_at
    info = replace(moto_layout(s3, bucket, folder, when), export_arn=export_arn, table_arn=desc.get("TableArn"))
    count = desc.get("ItemCount")
    if count is not None and len(info.files) == 1:  # moto's one file holds them all: its count can be checked
        info = replace(info, item_count=count, files=(replace(info.files[0], item_count=count),))
    return info


def start_export(
    dynamodb: DynamoDBClient,
    s3: S3Client,
    table: str,
    bucket: str,
    *,
    prefix: str | None = None,
    fmt: ExportFormat = "DYNAMODB_JSON",
    export_time: datetime | None = None,
    progress: ProgressCallback | None = None,
    poll_s: float = 10.0,
    timeout_s: float | None = None,
) -> ExportInfo:
    """Request a full point-in-time export of ``table`` (name or ARN) to ``bucket``, wait, and locate it.

    ``prefix`` defaults to a fresh ``ddbrepl-exports/<table>/<UTC time>-<random>`` so no two exports share one
    (moto needs that to match an ARN to its folder; AWS would separate them anyway). ``export_time`` None asks
    for "now". The table needs point-in-time recovery (PITR) enabled.
    """
    table_arn = table if table.startswith("arn:") else _table_arn(dynamodb, table)
    name = table_arn.rsplit("/", 1)[-1]
    if prefix is None:
        prefix = f"ddbrepl-exports/{name}/{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    request: dict[str, Any] = {
        "TableArn": table_arn,
        "S3Bucket": bucket,
        "S3Prefix": prefix,
        "ExportFormat": fmt,
        "ExportType": "FULL_EXPORT",
        "ClientToken": uuid.uuid4().hex,
    }
    if export_time is not None:
        request["ExportTime"] = export_time
    requested_at = export_time or datetime.now(UTC)
    try:
        desc = dynamodb.export_table_to_point_in_time(**request)["ExportDescription"]
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "PointInTimeRecoveryUnavailableException":
            raise SourceError(
                f"table {name!r} cannot be exported: point-in-time recovery is not enabled",
                hint=f"aws dynamodb update-continuous-backups --table-name {name} "
                "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true",
            ) from exc
        raise translate(exc, f"ExportTableToPointInTime of table {name!r}") from exc
    arn = desc["ExportArn"]
    log.info("started export %s of table %s to s3://%s/%s", arn, name, bucket, prefix)
    wait_export(dynamodb, arn, progress=progress, poll_s=poll_s, timeout_s=timeout_s)
    return describe_export(dynamodb, s3, arn, requested_at=requested_at)


def wait_export(
    dynamodb: DynamoDBClient,
    export_arn: str,
    *,
    progress: ProgressCallback | None = None,
    poll_s: float = 10.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExportProgress:
    """Poll DescribeExport until the export leaves IN_PROGRESS; report every poll to ``progress``.

    Raises SourceError when it FAILED or when ``timeout_s`` (seconds) passes; AWS gives no bound on duration.
    """
    started = time.monotonic()
    while True:
        desc = _describe(dynamodb, export_arn)
        state = ExportProgress(
            export_arn=export_arn,
            status=str(desc.get("ExportStatus")),
            elapsed_s=time.monotonic() - started,
            item_count=desc.get("ItemCount"),
            billed_bytes=desc.get("BilledSizeBytes"),
        )
        if progress is not None:
            progress(state)
        if state.status == "COMPLETED":
            return state
        if state.status == "FAILED":
            raise SourceError(
                f"export {export_arn} failed: {desc.get('FailureCode')}: {desc.get('FailureMessage')}",
                hint="fix the cause (bucket, permissions, PITR window) and start a new export",
            )
        if timeout_s is not None and state.elapsed_s >= timeout_s:
            raise SourceError(
                f"export {export_arn} still {state.status} after {state.elapsed_s:.0f} s",
                hint="it keeps running on AWS: load it later with --source <export ARN>",
            )
        sleep(poll_s)


def _describe(dynamodb: DynamoDBClient, export_arn: str) -> dict[str, Any]:
    try:
        return dict(dynamodb.describe_export(ExportArn=export_arn)["ExportDescription"])
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"DescribeExport of {export_arn}") from exc


def _table_arn(dynamodb: DynamoDBClient, table: str) -> str:
    try:
        return dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"DescribeTable of table {table!r}") from exc
