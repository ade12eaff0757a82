"""Stream one data file of a DynamoDB export as chunks of RawChange, in constant memory.

S3 GetObject body → 256 KiB reads → streaming gzip decompression (multi-member aware) → lines → one record per
line (orjson for DYNAMODB_JSON, amazon-ion for ION) → RawChange. Nothing holds more than one read block, its
lines, and one chunk of changes.

Checks, each a :class:`SourceError` naming the file: corrupt gzip data, a truncated gzip stream, a line
that does not parse or lacks what it must hold (with its line number), a line count different from the
manifest's ``itemCount``, and, on request, the base64 MD5 of the stored object against ``md5Checksum``.
Every check of a file runs before its last chunk is yielded, so a runner that records the file as done
together with that last chunk never records a bad file as done. A 0-byte object is an empty file (AWS
writes empty files for empty partitions).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ddbrepl.errors import ConfigError, Retriable, SourceError
from ddbrepl.records import EventName, RawChange
from ddbrepl.sources import ion
from ddbrepl.sources.aws import error_code, translate
from ddbrepl.sources.export_model import DataFile, ExportInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

CHUNK_CHANGES = 5000
"""Changes per yielded chunk: big enough for a set-based apply, small enough to keep memory flat."""
READ_BYTES = 256 * 1024
"""Compressed bytes per S3 read."""
TEXT_BYTES = 1024 * 1024
"""Decompressed bytes per block of lines handed to the parser (bounds memory whatever the compression ratio)."""
GZIP_WBITS = 31  # zlib: gzip header and trailer required
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BlockParser = Callable[[list[bytes]], list[RawChange]]
"""Turns a block of lines into their changes; raises :class:`LineError` naming the bad line's offset."""


class LineError(ValueError):
    """A line of a block that cannot be read; ``offset`` is its index in the block."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(reason)


def iter_file(
    s3: S3Client,
    info: ExportInfo,
    datafile: DataFile,
    key_attrs: Sequence[str],
    *,
    chunk_size: int = CHUNK_CHANGES,
    verify_md5: bool = False,
) -> Iterator[list[RawChange]]:
    """Yield the changes of one data file in chunks of at most ``chunk_size``.

    ``key_attrs`` are the table's key attribute names (partition key, then sort key): a full-export item
    becomes ``RawChange("INSERT", keys=<those attributes>, new_image=item)``. Incremental lines become
    INSERT, MODIFY or REMOVE from the images present (see :func:`change_from_incremental`). ``verify_md5``
    is off by default: AWS does not document what ``md5Checksum`` covers; a consumer's note says the stored
    ``.json.gz`` bytes, as base64.
    """
    if not key_attrs:
        raise ConfigError("reading an export needs the table's key attribute names")
    parse = block_parser(info, key_attrs)
    where = f"s3://{info.bucket}/{datafile.key}"
    hasher = hashlib.md5(usedforsecurity=False)
    chunk: list[RawChange] = []
    count = 0
    for first, lines in iter_lines(_raw_blocks(s3, info.bucket, datafile.key, hasher), where):
        try:
            chunk.extend(parse(lines))
        except LineError as exc:
            raise SourceError(
                f"export file {where}, line {first + exc.offset}: {exc.reason}",
                hint="the file is not a DynamoDB export data file in the manifest's format",
            ) from exc
        while len(chunk) >= chunk_size:
            count += chunk_size
            yield chunk[:chunk_size]
            chunk = chunk[chunk_size:]
    count += len(chunk)
    _check_count(info, datafile, count)
    if verify_md5 and datafile.md5:
        _check_md5(info, datafile, hasher.digest())
    log.debug("read %d changes from s3://%s/%s", count, info.bucket, datafile.key)
    if chunk:
        yield chunk


def _check_count(info: ExportInfo, datafile: DataFile, count: int) -> None:
    if datafile.item_count is not None and count != datafile.item_count:
        raise SourceError(
            f"export file s3://{info.bucket}/{datafile.key} holds {count} items, "
            f"but the manifest says {datafile.item_count}",
            hint="the file is incomplete or was replaced; run a new export",
        )


def _check_md5(info: ExportInfo, datafile: DataFile, digest: bytes) -> None:
    expected = datafile.md5 or ""
    if expected not in (base64.b64encode(digest).decode("ascii"), digest.hex()):
        raise SourceError(
            f"export file s3://{info.bucket}/{datafile.key}: MD5 {base64.b64encode(digest).decode('ascii')} "
            f"differs from the manifest's md5Checksum {expected}",
            hint="the object changed after the export; run a new export",
        )


def _raw_blocks(s3: S3Client, bucket: str, key: str, hasher: Any) -> Iterator[bytes]:
    """The stored bytes of one object, block by block; each block is fed to ``hasher`` first."""
    where = f"s3://{bucket}/{key}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise SourceError(
                f"export file {where} does not exist",
                hint="the export was moved or deleted; run a new export",
            ) from exc
        raise translate(exc, f"GetObject of export file {where}") from exc
    try:
        while block := body.read(READ_BYTES):
            hasher.update(block)
            yield block
    except BotoCoreError as exc:  # a dropped connection mid-file: read the file again
        raise Retriable(f"reading export file {where} broke off: {exc}") from exc
    finally:
        body.close()


def iter_lines(blocks: Iterable[bytes], name: str) -> Iterator[tuple[int, list[bytes]]]:
    """Decompress a gzip stream block by block and yield ``(first line number, lines)``; numbers start at 1.

    Concatenated gzip members are read as one stream, as ``gzip`` does. Empty input is an empty file.
    """
    decompressor = zlib.decompressobj(GZIP_WBITS)
    pending = b""
    lineno = 1
    seen = 0
    for block in blocks:
        seen += len(block)
        data = block
        while data:
            if decompressor.eof:
                decompressor = zlib.decompressobj(GZIP_WBITS)
            try:
                out = decompressor.decompress(data, TEXT_BYTES)
            except zlib.error as exc:
                raise SourceError(
                    f"export file {name} is not valid gzip data (within bytes {seen - len(block)}-{seen}): {exc}",
                    hint="the object is corrupt; run a new export",
                ) from exc
            data = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
            if out:
                lines = (pending + out).split(b"\n")
                pending = lines.pop()
                if lines:
                    yield lineno, lines
                    lineno += len(lines)
    if seen and not decompressor.eof:
        raise SourceError(
            f"export file {name} is truncated: the gzip stream ends after {seen} bytes without its trailer",
            hint="the object is incomplete; run a new export",
        )
    if pending:
        yield lineno, [pending]


def block_parser(info: ExportInfo, key_attrs: Sequence[str]) -> BlockParser:
    """The function that turns a block of this export's lines into changes (blank lines skipped)."""
    keys = tuple(key_attrs)
    make: Callable[[Any, Sequence[str]], RawChange] = change_from_incremental if info.incremental else change_from_item
    if info.format == "ION":
        return lambda lines: _ion_block(lines, make, keys)

    def parse_json(lines: list[bytes]) -> list[RawChange]:
        out = []
        loads = orjson.loads
        for offset, line in enumerate(lines):
            if not line or line.isspace():
                continue
            try:
                out.append(make(loads(line), keys))
            except (ValueError, TypeError, AttributeError) as exc:
                raise LineError(offset, str(exc)) from exc
        return out

    return parse_json


def _ion_block(
    lines: list[bytes], make: Callable[[Any, Sequence[str]], RawChange], keys: Sequence[str]
) -> list[RawChange]:
    """Parse a whole block in one amazon-ion call; on any error, go line by line to name the bad line."""
    try:
        return [make(ion_record(value), keys) for value in ion.parse(b"\n".join(lines))]
    except (ValueError, TypeError, AttributeError):
        pass
    for offset, line in enumerate(lines):
        try:
            for value in ion.parse(line):
                make(ion_record(value), keys)
        except (ValueError, TypeError, AttributeError) as exc:
            raise LineError(offset, str(exc)) from exc
    raise LineError(0, "the block does not parse as a whole, though each line does")


def change_from_item(record: Any, key_attrs: Sequence[str]) -> RawChange:
    """A full-export line ``{"Item": {...}}`` → an INSERT carrying the key attributes and the whole item."""
    item = record.get("Item") if isinstance(record, dict) else None
    if not isinstance(item, dict):
        raise ValueError('expected {"Item": {...}}')
    try:
        keys = {name: item[name] for name in key_attrs}
    except KeyError as exc:
        raise ValueError(f"item lacks key attribute {exc.args[0]!r}") from None
    return RawChange(event="INSERT", keys=keys, new_image=item)


def change_from_incremental(record: Any, key_attrs: Sequence[str] = ()) -> RawChange:
    """An incremental line ``{"Metadata", "Keys", "NewImage", "OldImage"}`` → a RawChange.

    There is no event name in the file: no NewImage means REMOVE; NewImage with OldImage means MODIFY;
    NewImage alone means INSERT — under the NEW_IMAGE view that may also be an update, which is harmless
    because the sink applies both as an upsert. ``approx_time`` is ``WriteTimestampMicros`` (DynamoDB's
    clock, not comparable with stream sequence numbers); ``sequence`` stays None.
    """
    keys = record.get("Keys") if isinstance(record, dict) else None
    if not isinstance(keys, dict):
        raise ValueError('expected an incremental export line with "Keys"')
    missing = [name for name in key_attrs if name not in keys]
    if missing:
        raise ValueError(f"Keys lacks key attribute {missing[0]!r}")
    new = record.get("NewImage")
    old = record.get("OldImage")
    if (new is not None and not isinstance(new, dict)) or (old is not None and not isinstance(old, dict)):
        raise ValueError("NewImage and OldImage must be maps of attributes")
    event: EventName = "REMOVE" if new is None else "MODIFY" if old is not None else "INSERT"
    return RawChange(
        event=event, keys=keys, new_image=new, old_image=old, approx_time=write_time(record.get("Metadata"))
    )


def write_time(metadata: Any) -> datetime | None:
    """``Metadata.WriteTimestampMicros`` (``{"N": "…"}`` in JSON, a number in ION) as an aware datetime."""
    if not isinstance(metadata, dict):
        return None
    raw = metadata.get("WriteTimestampMicros")
    if isinstance(raw, dict):
        raw = raw.get("N")
    if raw is None:
        return None
    return EPOCH + timedelta(microseconds=int(raw))


def ion_record(value: Any) -> dict[str, Any]:
    """One top-level ION struct → the same record in DynamoDB JSON shape (Item, or Keys/images/Metadata)."""
    if not hasattr(value, "items"):
        raise ValueError(f"expected an Ion struct, got {value!r}")
    record: dict[str, Any] = {}
    for name, part in value.items():
        if name == "Metadata":
            micros = part.get("WriteTimestampMicros") if hasattr(part, "get") else None
            record["Metadata"] = {"WriteTimestampMicros": None if micros is None else {"N": str(int(micros))}}
        elif name in ("Item", "Keys", "NewImage", "OldImage"):
            if not hasattr(part, "items"):
                raise ValueError(f"{name} must be an Ion struct, got {part!r}")
            record[str(name)] = ion.to_item(part)
    return record
