"""Read an export's layout on S3 into an :class:`ExportInfo`: the AWS manifests, or moto's bare folder.

The rules (full keys, the prefix doubt, moto's layout, an unfinished export) are set out in
:mod:`ddbrepl.sources.s3export`, the entry point; this module only reads S3 objects and listings.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ddbrepl.errors import SourceError
from ddbrepl.sources.aws import error_code, translate
from ddbrepl.sources.export_model import DataFile, ExportFormat, ExportInfo, ExportType

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

EXPORTS_DIR = "AWSDynamoDB/"
SUMMARY = "manifest-summary.json"
FORMATS: dict[str, ExportFormat] = {"DYNAMODB_JSON": "DYNAMODB_JSON", "ION": "ION"}
TYPES: dict[str, ExportType] = {"FULL_EXPORT": "FULL_EXPORT", "INCREMENTAL_EXPORT": "INCREMENTAL_EXPORT"}


def get_json(s3: S3Client, bucket: str, key: str, *, missing_ok: bool = False) -> Any:
    body = get_bytes(s3, bucket, key, missing_ok=missing_ok)
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from exc


def get_bytes(s3: S3Client, bucket: str, key: str, *, missing_ok: bool = False) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            if missing_ok:
                return None
            raise SourceError(
                f"s3://{bucket}/{key} does not exist",
                hint="check the export address; was the export deleted?",
            ) from exc
        raise translate(exc, f"GetObject of s3://{bucket}/{key}") from exc


def from_summary(s3: S3Client, bucket: str, key: str, summary: Any = None) -> ExportInfo:
    """Build the ExportInfo of an AWS-layout export from its summary and files manifests."""
    if summary is None:
        summary = get_json(s3, bucket, key)
    where = f"s3://{bucket}/{key}"
    if not isinstance(summary, dict):
        raise SourceError(f"{where} is not a JSON object")
    try:
        fmt = FORMATS[summary.get("outputFormat") or "DYNAMODB_JSON"]
        export_type = TYPES[summary.get("exportType") or "FULL_EXPORT"]
    except KeyError as exc:
        raise SourceError(f"{where}: unknown export format or type {exc.args[0]!r}") from None
    when = summary.get("exportToTime") if export_type == "INCREMENTAL_EXPORT" else None
    when = when or summary.get("exportTime") or summary.get("startTime")  # never later than the snapshot
    files_key = summary.get("manifestFilesS3Key")
    if not when or not files_key:
        raise SourceError(f"{where} lacks exportTime or manifestFilesS3Key", hint="is this a DynamoDB export?")
    prefix = summary.get("s3Prefix") or None
    manifest = get_bytes(s3, bucket, files_key, missing_ok=True)
    relative_to = ""
    if manifest is None and prefix and not files_key.startswith(prefix):
        relative_to = prefix.rstrip("/") + "/"
        manifest = get_bytes(s3, bucket, relative_to + files_key, missing_ok=True)
    if manifest is None:
        raise SourceError(f"{where}: its files manifest s3://{bucket}/{files_key} does not exist")
    files = tuple(data_files(manifest, relative_to, f"s3://{bucket}/{relative_to}{files_key}"))
    item_count = summary.get("itemCount")
    return ExportInfo(
        bucket=bucket,
        folder=key.rsplit("/", 1)[0] + "/" if "/" in key else "",
        prefix=prefix,
        export_arn=summary.get("exportArn"),
        table_arn=summary.get("tableArn"),
        export_time=timestamp(when, where),
        format=fmt,
        export_type=export_type,
        view_type=summary.get("outputView") if export_type == "INCREMENTAL_EXPORT" else None,
        item_count=None if item_count is None else int(item_count),
        files=files,
        export_from_time=(
            timestamp(summary["exportFromTime"], where)
            if export_type == "INCREMENTAL_EXPORT" and summary.get("exportFromTime")
            else None
        ),
    )


def data_files(manifest: bytes, relative_to: str, where: str) -> list[DataFile]:
    files = []
    for lineno, line in enumerate(manifest.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            count = entry.get("itemCount")
            files.append(
                DataFile(
                    key=relative_to + entry["dataFileS3Key"],
                    item_count=None if count is None else int(count),
                    md5=entry.get("md5Checksum"),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SourceError(f"{where}, line {lineno}: not a data file entry ({exc})") from exc
    return files


def timestamp(value: Any, where: str) -> datetime:
    try:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, int | float):
            parsed = datetime.fromtimestamp(value, UTC)
        else:
            parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SourceError(f"{where}: bad timestamp {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def list_objects(s3: S3Client, bucket: str, prefix: str, delimiter: str | None = None) -> tuple[list[Any], list[str]]:
    """All objects and common prefixes under ``prefix`` (paginated)."""
    objects: list[Any] = []
    folders: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            objects.extend(page.get("Contents", []))
            folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"listing s3://{bucket}/{prefix}") from exc
    return objects, folders


def single_folder(s3: S3Client, bucket: str, base: str, *, require_manifestless: bool) -> str:
    """The one export folder under ``base`` (a prefix, or a prefix's ``AWSDynamoDB/``)."""
    root = base if base.endswith(EXPORTS_DIR) else base + EXPORTS_DIR
    _, folders = list_objects(s3, bucket, root, "/")
    folders = [f for f in folders if f != root + "data/"]  # the incremental exports' shared data folder
    if require_manifestless:
        folders = [f for f in folders if get_bytes(s3, bucket, f + SUMMARY, missing_ok=True) is None]
    if len(folders) != 1:
        found = ", ".join(folders[:5]) + (" …" if len(folders) > 5 else "") if folders else "none"
        raise SourceError(
            f"expected exactly one export folder under s3://{bucket}/{root}, found {len(folders)}: {found}",
            hint="pass the export folder itself: s3://bucket/prefix/AWSDynamoDB/<export id>/",
        )
    return folders[0]


def moto_layout(s3: S3Client, bucket: str, folder: str, when: datetime | None) -> ExportInfo:
    """A manifest-less folder as moto writes it: each ``.gz`` object under ``data/`` is a DYNAMODB_JSON file.

    AWS writes ``_started`` first and the manifests last, so a folder with ``_started`` and no summary is an AWS
    export still running (or failed): reading its data files would load part of a table without a word.
    """
    if get_bytes(s3, bucket, folder + "_started", missing_ok=True) is not None:
        raise SourceError(
            f"the export at s3://{bucket}/{folder} is not complete: it has _started but no {SUMMARY}",
            hint="wait for the export to finish (DescribeExport), or use another export",
        )
    objects, _ = list_objects(s3, bucket, folder + "data/")
    objects = [o for o in objects if o["Key"].endswith(".gz")]
    if not objects:
        raise SourceError(
            f"no DynamoDB export at s3://{bucket}/{folder}: neither {SUMMARY} nor data/*.gz",
            hint="pass the export folder: s3://bucket/prefix/AWSDynamoDB/<export id>/",
        )
    if when is None:
        when = min(o["LastModified"] for o in objects)
    log.info(
        "s3://%s/%s has no manifest: reading its %d data file(s) as moto writes them",
        bucket,
        folder,
        len(objects),
    )
    return ExportInfo(
        bucket=bucket,
        folder=folder,
        prefix=folder.split(EXPORTS_DIR, maxsplit=1)[0].rstrip("/") or None,
        export_arn=None,
        table_arn=None,
        export_time=timestamp(when, f"s3://{bucket}/{folder}"),
        format="DYNAMODB_JSON",
        export_type="FULL_EXPORT",
        view_type=None,
        item_count=None,
        files=tuple(DataFile(key=o["Key"], item_count=None) for o in sorted(objects, key=lambda o: o["Key"])),
        layout="moto",
    )
