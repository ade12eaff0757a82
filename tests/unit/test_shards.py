"""Shard lineage: which shards are ready, in which order, under DescribeStream's inconsistent shapes."""

from __future__ import annotations

import random

from ddbrepl.records import Shard
from ddbrepl.sources.shards import children, merge, order, ready

ROOT = Shard("shardId-root", None, 100, 199)
LEFT = Shard("shardId-left", "shardId-root", 200, 299)
RIGHT = Shard("shardId-right", "shardId-root", 201)
GRANDCHILD = Shard("shardId-grand", "shardId-left", 300)


def ids(shards: list[Shard]) -> list[str]:
    return [s.id for s in shards]


def test_only_the_root_is_ready_before_anything_is_finished() -> None:
    assert ids(ready([GRANDCHILD, RIGHT, LEFT, ROOT], set())) == ["shardId-root"]


def test_children_become_ready_when_the_parent_is_finished() -> None:
    assert ids(ready([ROOT, LEFT, RIGHT, GRANDCHILD], {"shardId-root"})) == ["shardId-left", "shardId-right"]
    assert ids(ready([ROOT, LEFT, RIGHT, GRANDCHILD], {"shardId-root", "shardId-left"})) == [
        "shardId-right",
        "shardId-grand",
    ]


def test_finished_shards_are_never_ready_again() -> None:
    every = {"shardId-root", "shardId-left", "shardId-right", "shardId-grand"}
    assert ready([ROOT, LEFT, RIGHT, GRANDCHILD], every) == []


def test_a_parent_no_longer_listed_counts_as_trimmed() -> None:
    # After 24 h the parent is trimmed from DescribeStream; its children must not wait forever.
    assert ids(ready([LEFT, RIGHT], set())) == ["shardId-left", "shardId-right"]


def test_an_open_parent_listed_with_its_open_child_keeps_the_child_waiting() -> None:
    # Inconsistent shape from the facts sheet §1.2: the parent still shows as open next to its child.
    open_parent = Shard("shardId-root", None, 100)
    assert ids(ready([open_parent, RIGHT], set())) == ["shardId-root"]
    assert ids(ready([open_parent, RIGHT], {"shardId-root"})) == ["shardId-right"]


def test_a_closed_leaf_without_children_is_simply_finished() -> None:
    assert ready([ROOT], {"shardId-root"}) == []


def test_the_closed_view_of_a_shard_wins_over_a_stale_open_view() -> None:
    stale = Shard("shardId-root", None, 100)
    assert merge([ROOT], [stale]) == [ROOT]
    assert merge([stale], [ROOT]) == [ROOT]
    assert ids(ready([stale, ROOT, LEFT], set())) == ["shardId-root"]


def test_a_shard_naming_itself_as_parent_is_a_root() -> None:
    odd = Shard("shardId-odd", "shardId-odd", 5)
    assert ids(ready([odd], set())) == ["shardId-odd"]


def test_order_puts_every_parent_before_its_children_whatever_the_listing_order() -> None:
    shards = [ROOT, LEFT, RIGHT, GRANDCHILD, Shard("shardId-other-root", None, 50)]
    rng = random.Random(7)
    for _ in range(50):
        rng.shuffle(shards)
        ordered = ids(order(shards))
        assert sorted(ordered) == sorted(ids(shards))
        for shard in shards:
            if shard.parent_id in ordered:
                assert ordered.index(shard.parent_id) < ordered.index(shard.id)


def test_order_keeps_shards_caught_in_a_parent_cycle() -> None:
    a = Shard("shardId-a", "shardId-b", 1)
    b = Shard("shardId-b", "shardId-a", 2)
    assert sorted(ids(order([a, b]))) == ["shardId-a", "shardId-b"]


def test_children_lists_a_split_oldest_first() -> None:
    assert ids(children([GRANDCHILD, RIGHT, LEFT, ROOT], "shardId-root")) == ["shardId-left", "shardId-right"]
    assert children([ROOT], "shardId-root") == []


def test_sequence_numbers_of_different_lengths_order_as_integers() -> None:
    # "9…" > "10…" as strings; lineage ties are broken by the integer starting sequence.
    short = Shard("shardId-b", None, 9 * 10**20)
    long = Shard("shardId-a", None, 10**21)
    assert ids(order([long, short])) == ["shardId-b", "shardId-a"]
