"""ShardReader against FakeStreams: lineage across splits, iterator renewal, idle and throttle pacing."""

from __future__ import annotations

from typing import Any

import pytest

from ddbrepl.errors import Retriable
from ddbrepl.records import RawChange
from ddbrepl.sources.reader import ShardReader
from ddbrepl.sources.shards import ready
from ddbrepl.sources.stream import TrimmedData, describe_stream
from tests.fakes.streams import FakeStreams


class Clock:
    """A manual monotonic clock; ``sleep`` advances it and records the delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def item(pk: str, v: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": v}}


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def reader(fake: FakeStreams, shard_id: str, clock: Clock, **kw: Any) -> ShardReader:
    shard = next(s for s in describe_stream(fake.client, fake.arn).shards if s.id == shard_id)
    return ShardReader(fake.client, fake.arn, shard, clock=clock, sleep=clock.sleep, **kw)


def drain(r: ShardReader) -> list[RawChange]:
    out: list[RawChange] = []
    while not r.finished:
        out.extend(r.next_batch().changes)
    return out


def apply_in_lineage_order(fake: FakeStreams, clock: Clock) -> dict[str, str | None]:
    """Read every shard, parents first, applying changes like a sink would (last change per key wins)."""
    table: dict[str, str | None] = {}
    finished: set[str] = set()
    while todo := ready(describe_stream(fake.client, fake.arn).shards, finished):
        for shard in todo:
            if shard.closed:
                for change in drain(reader(fake, shard.id, clock)):
                    pk = change.keys["pk"]["S"]
                    table[pk] = None if change.event == "REMOVE" else (change.new_image or {})["v"]["S"]
                finished.add(shard.id)
            else:
                r = reader(fake, shard.id, clock)
                while not r.caught_up:
                    for change in r.next_batch().changes:
                        table[change.keys["pk"]["S"]] = (change.new_image or {})["v"]["S"]
                finished.add(shard.id)  # caught up is enough for this test: nothing else is written
    return table


def test_an_item_changed_in_the_parent_and_again_in_a_child_ends_with_the_childs_value() -> None:
    fake = FakeStreams()
    root = fake.add_shard()
    fake.put("INSERT", key("a"), new=item("a", "parent"), shard_id=root)
    fake.put("INSERT", key("b"), new=item("b", "parent"), shard_id=root)
    left, right = fake.split(root)
    fake.put("MODIFY", key("a"), new=item("a", "child"), old=item("a", "parent"), shard_id=right)
    fake.put("MODIFY", key("b"), new=item("b", "child-left"), shard_id=left)
    fake.split(right)  # a grandchild too: the right child closes after its one record
    assert apply_in_lineage_order(fake, Clock()) == {"a": "child", "b": "child-left"}


def test_a_closed_parent_read_to_its_end_is_finished() -> None:
    fake = FakeStreams()
    root = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i), "x"), shard_id=root) for i in range(5)]
    fake.split(root)
    r = reader(fake, root, Clock(), limit=2)
    assert [c.sequence for c in drain(r)] == seqs
    assert r.finished and r.caught_up and r.position == seqs[-1]
    assert r.next_batch().next_iterator is None


def test_an_expired_iterator_is_renewed_from_the_position_without_loss_or_repeat() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i), "x")) for i in range(6)]
    r = reader(fake, shard, Clock(), limit=2)
    seen = [c.sequence for c in r.next_batch().changes]
    fake.expire_iterators()
    seen += [c.sequence for c in r.next_batch().changes]
    seen += [c.sequence for c in r.next_batch().changes]
    assert seen == seqs
    assert fake.calls["get_shard_iterator"] == 2


def test_reset_rewinds_to_a_committed_checkpoint() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i), "x")) for i in range(4)]
    r = reader(fake, shard, Clock())
    assert [c.sequence for c in r.next_batch().changes] == seqs
    r.reset(seqs[1])  # the runner could not commit past seqs[1]
    assert [c.sequence for c in r.next_batch().changes] == seqs[2:]


def test_throttling_pushes_the_next_read_back_then_reads_on() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    fake.put("INSERT", key("a"), new=item("a", "x"))
    clock = Clock()
    r = reader(fake, shard, clock)
    r.next_batch()  # acquires the iterator, reads the record
    fake.throttle(2)
    with pytest.raises(Retriable):
        r.next_batch()
    first_delay = r.due_at - clock.now
    with pytest.raises(Retriable):
        r.next_batch()
    assert r.due_at - clock.now > first_delay > 0
    fake.put("INSERT", key("b"), new=item("b", "x"))
    assert [c.keys for c in r.next_batch().changes] == [key("b")]


def test_idle_open_shard_backs_off_to_idle_max_and_a_record_resets_it() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    clock = Clock()
    r = reader(fake, shard, clock, idle_min=0.1, idle_max=1.0, idle_reads=3)
    for _ in range(7):
        r.next_batch()
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert r.caught_up
    fake.put("INSERT", key("a"), new=item("a", "x"))
    clock.sleeps.clear()
    assert len(r.next_batch().changes) == 1
    assert not r.caught_up
    r.next_batch()  # due at once after a batch with records
    assert clock.sleeps == [1.0]  # the only wait was the idle one before the productive read


def test_an_idle_table_costs_about_one_read_per_second_per_shard() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    clock = Clock()
    r = reader(fake, shard, clock, idle_max=1.0)
    start = clock.now
    while clock.now - start < 60:
        r.next_batch()
    assert 55 <= fake.calls["get_records"] <= 66


def test_empty_pages_on_a_closed_shard_are_walked_past_without_waiting_or_claiming_caught_up() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    fake.put("INSERT", key("a"), new=item("a", "x"))
    fake.close(shard)
    fake.empty_stretch(shard, 5)
    clock = Clock()
    r = reader(fake, shard, clock)
    for _ in range(5):
        assert r.next_batch().changes == []
        assert not r.caught_up
    assert len(r.next_batch().changes) == 1
    assert r.finished and clock.sleeps == []


def test_one_empty_page_on_an_open_shard_is_not_caught_up() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    r = reader(fake, shard, Clock(), idle_reads=3)
    r.next_batch()
    assert not r.caught_up


def test_a_shard_that_vanished_is_finished() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    r = reader(fake, shard, Clock())
    fake.remove_shard(shard)
    assert r.next_batch().next_iterator is None and r.finished


def test_trimmed_data_reaches_the_caller() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    seqs = [fake.put("INSERT", key(str(i)), new=item(str(i), "x")) for i in range(3)]
    fake.trim(shard, through=seqs[1])
    r = reader(fake, shard, Clock(), after_sequence=seqs[0])
    with pytest.raises(TrimmedData) as caught:
        r.next_batch()
    assert caught.value.after_sequence == seqs[0]


def test_start_at_latest_skips_history() -> None:
    fake = FakeStreams()
    shard = fake.add_shard()
    fake.put("INSERT", key("old"), new=item("old", "x"))
    r = reader(fake, shard, Clock(), start="LATEST")
    assert r.next_batch().changes == []
    fake.put("INSERT", key("new"), new=item("new", "x"))
    assert [c.keys for c in r.next_batch().changes] == [key("new")]
