"""The pure parts of the export reader: gzip → lines, and lines → RawChange."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from ddbrepl.errors import SourceError
from ddbrepl.records import RawChange
from ddbrepl.sources.export_read import change_from_incremental, change_from_item, iter_lines


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
