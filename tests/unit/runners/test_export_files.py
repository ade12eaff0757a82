"""Pure pieces of the export loader: look-ahead, key identity, and the summary a failed file leaves."""

from __future__ import annotations

from datetime import UTC, datetime

from ddbrepl.records import ApplyStats, RawChange
from ddbrepl.runners.backfill_common import Summary
from ddbrepl.runners.export_files import key_id, with_last


def test_with_last_flags_only_the_last_item() -> None:
    assert list(with_last([])) == []
    assert list(with_last(["a"])) == [("a", True)]
    assert list(with_last(iter("abc"))) == [("a", False), ("b", False), ("c", True)]


def test_key_id_follows_the_key_attribute_order_and_ignores_other_attributes() -> None:
    change = RawChange("INSERT", {"sk": {"N": "7"}, "pk": {"S": "a"}}, {"pk": {"S": "a"}, "x": {"S": "y"}})
    assert key_id(change, ("pk", "sk")) == (("S", "a"), ("N", "7"))
    other = RawChange("REMOVE", {"pk": {"S": "a"}, "sk": {"N": "7"}})
    assert key_id(other, ("pk", "sk")) == key_id(change, ("pk", "sk"))


def test_summary_lists_failed_files_and_says_the_run_is_not_finished() -> None:
    summary = Summary("T", items=10, seconds=1.0, stats=ApplyStats(upserts=10), segments=3, unit="file",
                      source="s3://b/AWSDynamoDB/1/", failed=("export file s3://b/x.json.gz is truncated",),
                      point_in_time=datetime(2026, 1, 1, tzinfo=UTC))
    text = summary.render()
    assert text.startswith("backfill of T stopped with 1 failed file(s) (re-run to retry only them): 10 items")
    assert "3 file(s) from s3://b/AWSDynamoDB/1/" in text
    assert text.endswith("\nfailed: export file s3://b/x.json.gz is truncated")
    summary.failed, summary.finished = (), True
    assert summary.render().endswith("; point in time 2026-01-01 00:00:00Z")
