"""Write a DynamoDB export to S3 laid out exactly as AWS documents it, for tests and benchmarks.

Real objects through a real S3 API (moto server over HTTP), not a mock: moto's own ExportTableToPointInTime writes
no manifests, ignores ION and cannot do incremental exports (reference/dynamodb-facts.md §3.5), so tests of the
AWS layout need this writer. What it writes (DynamoDB developer guide, "DynamoDB table export output format"):

    <prefix>/AWSDynamoDB/<export id>/_started                      (empty)
    <prefix>/AWSDynamoDB/<export id>/manifest-summary.json         (+ manifest-summary.checksum)
    <prefix>/AWSDynamoDB/<export id>/manifest-files.json           (+ manifest-files.checksum)
    <prefix>/AWSDynamoDB/<export id>/data/<random>.json.gz         (full export; `.ion.gz` for ION)
    <prefix>/AWSDynamoDB/data/<random>.json.gz                     (incremental export: the shared data folder)

``manifestFilesS3Key`` and ``dataFileS3Key`` are full object keys; ``md5Checksum`` is the base64 MD5 of the
stored ``.gz`` bytes; ``etag`` the hex MD5 (a single-part upload's ETag). Items are dealt round-robin over
``files`` data files; a file that gets no item is a 0-byte object, as AWS writes for an empty partition.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Format = Literal["DYNAMODB_JSON", "ION"]
ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class ExportLayout:
    """Where the fake export went, and what it promises."""

    bucket: str
    prefix: str
    export_id: str
    folder: str
    """Key prefix of the export folder, ending in ``/``."""
    export_arn: str
    table_arn: str
    export_time: datetime
    data_keys: tuple[str, ...]
    counts: tuple[int, ...]
    """Lines per data file, in ``data_keys`` order."""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.folder}"

    @property
    def summary_key(self) -> str:
        return self.folder + "manifest-summary.json"

    @property
    def item_count(self) -> int:
        return sum(self.counts)


def change_line(
    keys: Mapping[str, Any],
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
    *,
    micros: int = 1_700_000_000_000_000,
) -> dict[str, Any]:
    """One incremental-export record: ``{"Metadata", "Keys", "NewImage"?, "OldImage"?}``."""
    line: dict[str, Any] = {"Metadata": {"WriteTimestampMicros": {"N": str(micros)}}, "Keys": dict(keys)}
    if new_image is not None:
        line["NewImage"] = dict(new_image)
    if old_image is not None:
        line["OldImage"] = dict(old_image)
    return line


def write_export(
    s3: S3Client,
    bucket: str,
    prefix: str,
    items: Sequence[Mapping[str, Any]],
    *,
    files: int = 4,
    fmt: Format = "DYNAMODB_JSON",
    export_time: datetime | None = None,
    incremental_changes: Sequence[Mapping[str, Any]] | None = None,
    view_type: str = "NEW_AND_OLD_IMAGES",
    table: str = "FakeTable",
    export_id: str | None = None,
) -> ExportLayout:
    """Write a full export of ``items`` — or, given ``incremental_changes`` (see :func:`change_line`), an
    incremental export of those changes, ``items`` then being ignored — and return where it is.

    Items and changes are DynamoDB JSON with B values as base64 text, as the JSON export writes them.
    """
    export_time = export_time or datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    export_id = export_id or f"{int(export_time.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    base = f"{prefix.strip('/')}/AWSDynamoDB/" if prefix.strip("/") else "AWSDynamoDB/"
    folder = f"{base}{export_id}/"
    incremental = incremental_changes is not None
    lines = [_line(r, fmt) for r in incremental_changes] if incremental_changes is not None else []
    if not incremental:
        lines = [_line({"Item": item}, fmt) for item in items]
    data_dir = f"{base}data/" if incremental else f"{folder}data/"
    suffix = ".ion.gz" if fmt == "ION" else ".json.gz"
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    s3.put_object(Bucket=bucket, Key=folder + "_started", Body=b"")

    keys, counts, manifest = [], [], []
    for index in range(files):
        part = lines[index::files]
        body = gzip.compress(b"".join(part), compresslevel=6) if part else b""
        key = f"{data_dir}{uuid.uuid4().hex[:26]}{suffix}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        digest = hashlib.md5(body, usedforsecurity=False)
        manifest.append(
            orjson.dumps(
                {
                    "itemCount": len(part),
                    "md5Checksum": base64.b64encode(digest.digest()).decode("ascii"),
                    "etag": digest.hexdigest(),
                    "dataFileS3Key": key,
                }
            )
        )
        keys.append(key)
        counts.append(len(part))
    files_body = b"\n".join(manifest) + b"\n"
    _put_with_checksum(s3, bucket, folder + "manifest-files", files_body)

    started = export_time + timedelta(seconds=2)
    summary: dict[str, Any] = {
        "version": "2023-08-01" if incremental else "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": _iso(started),
        "endTime": _iso(started + timedelta(minutes=5)),
        "tableArn": table_arn,
        "tableId": str(uuid.uuid5(uuid.NAMESPACE_URL, table_arn)),
        "s3Bucket": bucket,
        "s3Prefix": prefix.strip("/") or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": folder + "manifest-files.json",
        "billedSizeBytes": sum(len(line) for line in lines),
        "itemCount": len(lines),
        "outputFormat": fmt,
    }
    if incremental:
        summary |= {
            "exportFromTime": _iso(export_time - timedelta(hours=1)),
            "exportToTime": _iso(export_time),
            "outputView": view_type,
            "exportType": "INCREMENTAL_EXPORT",
        }
    else:
        summary |= {"exportTime": _iso(export_time), "exportType": "FULL_EXPORT"}
    _put_with_checksum(s3, bucket, folder + "manifest-summary", orjson.dumps(summary))
    return ExportLayout(
        bucket=bucket,
        prefix=prefix.strip("/"),
        export_id=export_id,
        folder=folder,
        export_arn=summary["exportArn"],
        table_arn=table_arn,
        export_time=export_time,
        data_keys=tuple(keys),
        counts=tuple(counts),
    )


def _put_with_checksum(s3: S3Client, bucket: str, stem: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=stem + ".json", Body=body)
    s3.put_object(Bucket=bucket, Key=stem + ".checksum", Body=hashlib.md5(body, usedforsecurity=False).hexdigest())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _line(record: Mapping[str, Any], fmt: Format) -> bytes:
    if fmt == "DYNAMODB_JSON":
        return orjson.dumps(record) + b"\n"
    return b"$ion_1_0 " + ion_struct(record, top=True).encode("utf-8") + b"\n"


# --- DynamoDB JSON → Ion text, the way the ION export spells it ---------------------------------------------


def ion_struct(record: Mapping[str, Any], *, top: bool = False) -> str:
    """An Ion struct: the export's own fields (Item, Keys, …) at the top, attribute maps below."""
    fields = []
    for name, value in record.items():
        if top and name == "Metadata":
            micros = value["WriteTimestampMicros"]["N"]
            text = "{WriteTimestampMicros:" + micros + "}"
        elif top:
            text = ion_struct(value)
        else:
            text = ion_value(value)
        fields.append(f"{_field(name)}:{text}")
    return "{" + ",".join(fields) + "}"


def ion_value(av: Mapping[str, Any]) -> str:
    """One DynamoDB JSON attribute value as Ion text."""
    ((tag, raw),) = av.items()
    if tag == "S":
        return _string(raw)
    if tag == "N":
        return ion_decimal(raw)
    if tag == "B":
        return "{{" + str(raw) + "}}"
    if tag == "BOOL":
        return "true" if raw else "false"
    if tag == "NULL":
        return "null"
    if tag == "M":
        return ion_struct(raw)
    if tag == "L":
        return "[" + ",".join(ion_value(v) for v in raw) + "]"
    if tag == "SS":
        return "$dynamodb_SS::[" + ",".join(_string(v) for v in raw) + "]"
    if tag == "NS":
        return "$dynamodb_NS::[" + ",".join(ion_decimal(v) for v in raw) + "]"
    if tag == "BS":
        return "$dynamodb_BS::[" + ",".join("{{" + v + "}}" for v in raw) + "]"
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


def ion_decimal(text: str) -> str:
    """N text as an Ion decimal: ``103.`` for whole numbers, ``<digits>d<exponent>`` otherwise (never float)."""
    sign, digits, exponent = Decimal(text).as_tuple()
    coefficient = ("-" if sign else "") + ("".join(map(str, digits)) or "0")
    if exponent == 0:
        return coefficient + "."
    return f"{coefficient}d{exponent}"


def _string(text: str) -> str:
    return orjson.dumps(text).decode("utf-8")  # JSON string escapes are valid Ion string escapes


def _field(name: str) -> str:
    if name.isidentifier() and name.isascii() and name not in {"true", "false", "null", "nan"}:
        return name
    return _string(name)


def mixed_items(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``count`` deterministic items of mixed types, keyed ``pk`` (S) + ``sk`` (N), B as base64 text.

    Every item has the key; the rest varies with the index: 38-digit and fractional N, B, SS/NS/BS, nested M
    and L, NULL, BOOL, empty strings and lists, non-ASCII text.
    """
    items = []
    for i in range(start, start + count):
        item: dict[str, Any] = {"pk": {"S": f"user#{i % 97}"}, "sk": {"N": str(i)}}
        kind = i % 5
        if kind == 0:
            item["big"] = {"N": "9" * 38}
            item["frac"] = {"N": f"-{i}.25"}
            item["tags"] = {"SS": ["a", f"t{i}", "ünï"]}
        elif kind == 1:
            item["blob"] = {"B": base64.b64encode(bytes([i % 256, 0, 255])).decode()}
            item["blobs"] = {"BS": [base64.b64encode(b"x").decode(), base64.b64encode(b"").decode()]}
            item["nums"] = {"NS": ["1", "2.5", "1" + "0" * 30]}
        elif kind == 2:
            item["doc"] = {
                "M": {
                    "name": {"S": f"n{i}"},
                    "list": {"L": [{"N": "1"}, {"S": ""}, {"NULL": True}]},
                    "deep": {"M": {"ok": {"BOOL": True}}},
                }
            }
        elif kind == 3:
            item["gone"] = {"NULL": True}
            item["flag"] = {"BOOL": False}
            item["empty"] = {"L": []}
            item["emptymap"] = {"M": {}}
        else:
            item["text"] = {"S": f'line {i} 🙂 "quoted" \\ back'}
            item["tiny"] = {"N": "1E-130"}
        items.append(item)
    return items
