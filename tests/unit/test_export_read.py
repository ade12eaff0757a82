"""The pure parts of the export reader: gzip → lines, and lines → RawChange."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from ddbrepl.errors import SourceError
from ddbrepl.records import RawChange
from ddbrepl.sources.export_model import ExportFormat, ExportInfo, ExportType
from ddbrepl.sources.export_read import (
    TEXT_BYTES,
    LineError,
    block_parser,
    change_from_incremental,
    change_from_item,
    iter_lines,
)


def lines_of(blob: bytes, block: int = 7) -> list[bytes]:
    blocks = [blob[i : i + block] for i in range(0, len(blob), block)]
    return [line for _, lines in iter_lines(blocks, "f.json.gz") for line in lines]


def test_lines_survive_any_block_boundary() -> None:
    text = b"".join(b'{"n": %d}\n' % i for i in range(200))
    for block in (1, 3, 64, 10_000):
        assert lines_of(gzip.compress(text), block) == text.split(b"\n")[:-1]


def test_line_numbers_count_from_one() -> None:
    numbered = list(iter_lines([gzip.compress(b"a\nb\nc\n")], "f"))
    assert [(first + i, line) for first, lines in numbered for i, line in enumerate(lines)] == [
        (1, b"a"),
        (2, b"b"),
        (3, b"c"),
    ]


def test_concatenated_members_and_a_last_line_without_newline() -> None:
    assert lines_of(gzip.compress(b"a\nb\n") + gzip.compress(b"c\nd")) == [b"a", b"b", b"c", b"d"]


def test_empty_object_and_empty_gzip_are_empty_files() -> None:
    assert lines_of(b"") == []
    assert lines_of(gzip.compress(b"")) == []


def test_truncated_gzip_names_the_file() -> None:
    blob = gzip.compress(b"".join(b"line %d\n" % i for i in range(1000)))
    with pytest.raises(SourceError, match=r"f\.json\.gz is truncated"):
        lines_of(blob[: len(blob) // 2])


def test_corrupt_gzip_names_the_file() -> None:
    blob = bytearray(gzip.compress(b"".join(b"line %d\n" % i for i in range(1000))))
    blob[20:40] = b"\xff" * 20
    with pytest.raises(SourceError, match=r"f\.json\.gz is not valid gzip data"):
        lines_of(bytes(blob))
    with pytest.raises(SourceError, match="not valid gzip"):
        lines_of(b"this was never gzip\n")


def test_full_item_becomes_an_insert_with_its_keys() -> None:
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"L": []}}
    assert change_from_item({"Item": item}, ("pk", "sk")) == RawChange(
        event="INSERT", keys={"pk": {"S": "a"}, "sk": {"N": "1"}}, new_image=item
    )
    with pytest.raises(ValueError, match="lacks key attribute 'sk'"):
        change_from_item({"Item": {"pk": {"S": "a"}}}, ("pk", "sk"))
    with pytest.raises(ValueError, match="Item"):
        change_from_item({"Keys": {}}, ("pk",))


def test_incremental_event_is_inferred_from_the_images() -> None:
    keys = {"pk": {"S": "a"}}
    meta = {"WriteTimestampMicros": {"N": "1700000000123456"}}
    new, old = {"pk": {"S": "a"}, "v": {"N": "2"}}, {"pk": {"S": "a"}, "v": {"N": "1"}}
    insert = change_from_incremental({"Metadata": meta, "Keys": keys, "NewImage": new}, ("pk",))
    modify = change_from_incremental({"Metadata": meta, "Keys": keys, "NewImage": new, "OldImage": old})
    remove = change_from_incremental({"Metadata": meta, "Keys": keys, "OldImage": old})
    bare_remove = change_from_incremental({"Metadata": meta, "Keys": keys})  # NEW_IMAGE view delete
    assert (insert.event, modify.event, remove.event, bare_remove.event) == ("INSERT", "MODIFY", "REMOVE", "REMOVE")
    assert modify.old_image == old and modify.new_image == new and remove.new_image is None
    assert insert.approx_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert insert.sequence is None
    with pytest.raises(ValueError, match="Keys"):
        change_from_incremental({"Item": new})
    with pytest.raises(ValueError, match="lacks key attribute 'sk'"):
        change_from_incremental({"Keys": keys, "NewImage": new}, ("pk", "sk"))


def test_blocks_stay_bounded_whatever_the_compression_ratio() -> None:
    text = b"".join(b'{"Item": {"pk": {"S": "%07d"}}}\n' % i for i in range(200_000))  # ~6 MB, compresses ~50x
    blocks = list(iter_lines([gzip.compress(text)], "big"))
    assert len(blocks) > 4
    assert max(sum(len(line) + 1 for line in lines) for _, lines in blocks) <= TEXT_BYTES + 100
    assert sum(len(lines) for _, lines in blocks) == 200_000


def export(fmt: ExportFormat, export_type: ExportType = "FULL_EXPORT") -> ExportInfo:
    return ExportInfo(
        bucket="b",
        folder="AWSDynamoDB/x/",
        prefix=None,
        export_arn=None,
        table_arn=None,
        export_time=datetime(2026, 1, 1, tzinfo=UTC),
        format=fmt,
        export_type=export_type,
        view_type=None,
        item_count=None,
        files=(),
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(b"$ion_1_0 {Item:{pk:", "not valid Ion"), (b'$ion_1_0 {Item:{other:"x"}}', "lacks key attribute 'pk'")],
)
def test_an_ion_block_names_its_bad_line(bad: bytes, reason: str) -> None:
    parse = block_parser(export("ION"), ("pk",))
    good = [b'$ion_1_0 {Item:{pk:"%d",n:%d.}}' % (i, i) for i in range(5)]
    assert [c.keys for c in parse(good)] == [{"pk": {"S": str(i)}} for i in range(5)]
    with pytest.raises(LineError, match=reason) as caught:
        parse([*good[:3], bad, *good[3:]])
    assert caught.value.offset == 3


def test_a_json_block_skips_blank_lines_and_names_its_bad_line() -> None:
    parse = block_parser(export("DYNAMODB_JSON", "INCREMENTAL_EXPORT"), ("pk",))
    line = b'{"Keys": {"pk": {"S": "a"}}, "NewImage": {"pk": {"S": "a"}}}'
    assert [c.event for c in parse([line, b"", b"  ", line])] == ["INSERT", "INSERT"]
    with pytest.raises(LineError, match="Keys") as caught:
        parse([line, b'{"Item": {}}'])
    assert caught.value.offset == 1
