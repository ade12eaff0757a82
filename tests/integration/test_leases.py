"""state.leases and state.checkpoints on real PostgreSQL: fencing, balancing, parent before child, stream identity."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pytest

from ddbrepl.errors import Fatal, LeaseLost
from ddbrepl.records import Shard
from ddbrepl.state import checkpoints, leases, migrate

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-11-25T00:00:00.000"
SEQ = 10**39 + 7  # beyond bigint: numeric(40,0) round trip


@pytest.fixture
def conn(pg: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    with pg.transaction():
        migrate.apply(pg)
    return pg


def shards(n: int, parent_of: dict[int, int] | None = None) -> list[Shard]:
    parents = parent_of or {}
    return [Shard(f"s{i}", f"s{parents[i]}" if i in parents else None, i) for i in range(n)]


def rounds(conn: psycopg.Connection[Any], workers: list[str], n: int = 4) -> Counter[str]:
    for _ in range(n):
        for w in workers:
            leases.announce(conn, w)  # one session stands in for every worker's own
            with conn.transaction():
                leases.heartbeat(conn, w)
                leases.balance(conn, ARN, w, 30)
    return Counter(lease.owner for lease in leases.owners(conn, ARN) if lease.owner)


def test_advance_is_fenced_by_the_epoch_and_rolls_back_the_batch(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE applied (n int)")
    with conn.transaction():
        checkpoints.register(conn, "T", ARN, shards(1))
        held = leases.balance(conn, ARN, "a", 30)
    epoch = held["s0"]
    with conn.transaction():
        conn.execute("INSERT INTO applied VALUES (1)")
        checkpoints.advance(conn, ARN, "s0", sequence=SEQ, records=1, last_event_at=None, finished=False,
                            owner="a", epoch=epoch, lease_seconds=30)
    cp = checkpoints.get(conn, ARN, "s0")
    assert cp is not None and cp.sequence == SEQ and cp.records == 1
    # a paused past its lease; b takes the expired lease (new epoch)
    conn.execute("UPDATE ddbrepl.leases SET expires_at = now() - interval '1 second'")
    with conn.transaction():
        assert leases.balance(conn, ARN, "b", 30) == {"s0": epoch + 1}
    with pytest.raises(LeaseLost, match="no longer held by a"), conn.transaction():
        conn.execute("INSERT INTO applied VALUES (2)")
        checkpoints.advance(conn, ARN, "s0", sequence=SEQ + 5, records=1, last_event_at=None, finished=False,
                            owner="a", epoch=epoch, lease_seconds=30)
    assert conn.execute("SELECT array_agg(n) FROM applied").fetchone() == ([1],)
    cp = checkpoints.get(conn, ARN, "s0")
    assert cp is not None and cp.sequence == SEQ and cp.records == 1


def test_finishing_gives_the_lease_back_and_unblocks_the_children(conn: psycopg.Connection[Any]) -> None:
    leases.announce(conn, "a")
    with conn.transaction():
        checkpoints.register(conn, "T", ARN, shards(3, {1: 0, 2: 0}))
        held = leases.balance(conn, ARN, "a", 30)
    assert held == {"s0": 1}  # children wait for their parent
    assert leases.unclaimed(conn, ARN) == 0
    with conn.transaction():
        checkpoints.advance(conn, ARN, "s0", sequence=None, records=0, last_event_at=None, finished=True,
                            owner="a", epoch=1, lease_seconds=30)
    assert leases.unclaimed(conn, ARN) == 2
    with conn.transaction():
        assert leases.balance(conn, ARN, "b", 30) == {"s1": 1, "s2": 1}
    assert [(lease.shard_id, lease.owner) for lease in leases.owners(conn, ARN)] == [
        ("s0", None), ("s1", "b"), ("s2", "b")]


def test_three_workers_spread_eight_shards_evenly_and_stay_put(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        checkpoints.register(conn, "T", ARN, shards(8))
    leases.announce(conn, "a")
    with conn.transaction():
        leases.heartbeat(conn, "a")
        assert len(leases.balance(conn, ARN, "a", 30)) == 8  # alone: everything
    spread = rounds(conn, ["a", "b", "c"])
    assert sorted(spread.values()) == [2, 3, 3]
    epochs = {lease.shard_id: lease.epoch for lease in leases.owners(conn, ARN)}
    assert rounds(conn, ["a", "b", "c"]) == spread  # balanced: nobody steals any more
    assert {lease.shard_id: lease.epoch for lease in leases.owners(conn, ARN)} == epochs
    # c stops gracefully: its leases are free and the others share them
    with conn.transaction():
        leases.leave(conn, "c")
    assert sorted(rounds(conn, ["a", "b"]).values()) == [4, 4]


def test_a_worker_whose_session_ended_loses_its_leases_at_once(conn: psycopg.Connection[Any], pg_url: str) -> None:
    with conn.transaction():
        checkpoints.register(conn, "T", ARN, shards(4))
    other = psycopg.connect(pg_url, autocommit=True)  # worker a's own session
    assert leases.announce(other, "a")
    assert leases.announce(other, "a")  # again on its own session: still its
    assert not leases.announce(conn, "a")  # a second session cannot claim to be a
    with other.transaction():
        leases.heartbeat(other, "a")
        assert len(leases.balance(other, ARN, "a", 300)) == 4
    leases.announce(conn, "b")
    with conn.transaction():
        leases.heartbeat(conn, "b")
        assert leases.balance(conn, ARN, "b", 300, max_steal=0) == {}  # a is present: its leases stay
        assert leases.held_by_others(conn, ARN, "b").keys() == {"s0", "s1", "s2", "s3"}
    other.close()  # a is killed: its session ends, its leases (300 s left) are free now
    with conn.transaction():
        assert leases.unclaimed(conn, ARN) == 4 and leases.held_by_others(conn, ARN, "b") == {}
        assert leases.balance(conn, ARN, "b", 300) == {"s0": 2, "s1": 2, "s2": 2, "s3": 2}


def test_a_new_stream_arn_is_refused_unless_accepted(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        first = checkpoints.follow(conn, "T", ARN, "NEW_IMAGE")
    assert checkpoints.follow(conn, "T", ARN, "NEW_IMAGE") == first
    with pytest.raises(Fatal, match="changed from") as info:
        checkpoints.follow(conn, "T", ARN + "x", "NEW_IMAGE")
    assert "backfill --table T --restart" in (info.value.hint or "")
    assert checkpoints.follow(conn, "T", ARN + "x", "NEW_IMAGE", accept_new=True).stream_arn == ARN + "x"
