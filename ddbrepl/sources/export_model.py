"""What a located DynamoDB export is: its folder, point in time, format and data files.

Plain frozen values, filled by :mod:`ddbrepl.sources.s3export` from the manifests (or, for moto, from a
listing) and read by :mod:`ddbrepl.sources.export_read`; a runner keeps them to resume a load file by file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ExportFormat = Literal["DYNAMODB_JSON", "ION"]
ExportType = Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"]
Layout = Literal["aws", "moto"]


@dataclass(frozen=True, slots=True)
class DataFile:
    """One gzipped data file of an export, as ``manifest-files.json`` lists it."""

    key: str
    """The full S3 object key, used as is for GetObject."""
    item_count: int | None
    """Lines (items, or changes for an incremental export) the manifest promises; None when unknown (moto)."""
    md5: str | None = None
    """``md5Checksum`` from the manifest: base64 MD5 of the stored ``.json.gz`` bytes (checked on request)."""


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """A completed export, ready to read.

    ``export_time`` is the snapshot's point in time (aware, UTC): the first ``tail`` after this export must
    read stream records from ``export_time`` minus a margin (AWS says the cut-over is fuzzy by about a
    minute). For an incremental export it is the end of its window (``exportToTime``).

    ``layout`` says where the facts came from: ``"aws"`` means the manifests AWS documents; ``"moto"`` means
    the folder had no manifest (what moto writes), so the files come from listing ``data/``, ``item_count``
    and the per-file counts are unknown, and ``export_time`` is the best available estimate (see ``s3export``).
    """

    bucket: str
    folder: str
    """Key prefix of the export folder, ending in ``/``: ``<prefix>/AWSDynamoDB/<export id>/``."""
    prefix: str | None
    """The ``S3Prefix`` the export was requested with (None: no prefix)."""
    export_arn: str | None
    table_arn: str | None
    export_time: datetime
    format: ExportFormat
    export_type: ExportType
    view_type: str | None
    """``NEW_AND_OLD_IMAGES`` or ``NEW_IMAGE`` for an incremental export; None for a full one."""
    item_count: int | None
    files: tuple[DataFile, ...]
    layout: Layout = "aws"
    export_from_time: datetime | None = None
    """Start of an incremental export's window (``exportFromTime``, inclusive); None for a full export."""

    @property
    def url(self) -> str:
        """The ``s3://`` address of the export folder (what ``backfill --source`` accepts)."""
        return f"s3://{self.bucket}/{self.folder}"

    @property
    def incremental(self) -> bool:
        return self.export_type == "INCREMENTAL_EXPORT"


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """One poll of a running export, handed to the caller's progress callback."""

    export_arn: str
    status: str
    """``IN_PROGRESS``, ``COMPLETED`` or ``FAILED``."""
    elapsed_s: float
    item_count: int | None = None
    billed_bytes: int | None = None
