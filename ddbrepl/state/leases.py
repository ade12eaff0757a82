"""Shard leases in ``ddbrepl.leases``: several `tail` workers share a stream, and never two apply one shard.

A lease is (stream, shard) → owner, epoch, expires_at. The epoch is bumped on every change of owner, and every
commit of a batch is fenced by it (:func:`fence`, called by ``checkpoints.advance``): the fence is an UPDATE of the
lease row, so it both renews the lease and locks the row until the batch commits. A worker that was paused or cut
off past its lease finds another owner or epoch there, gets :class:`ddbrepl.errors.LeaseLost` and rolls back.

Each worker runs :func:`balance` every round (about a second): it renews what it holds, takes free or expired
leases of *ready* shards (unfinished, and whose parent shard is finished or unknown: parent before child holds
across workers) up to an equal share, and when still below its share takes at most ``max_steal`` leases per round
from the most loaded worker, as long as that worker keeps at least as many as the taker (no ping-pong). Live
workers are counted from ``ddbrepl.workers`` heartbeats.

A worker is *present* while the PostgreSQL session it announced itself on (:func:`announce`: a session advisory
lock named after the worker) is open. A worker killed with ``kill -9``, or cut off from PostgreSQL, loses its
session, so its leases count as expired at once instead of after ``lease_seconds``: a replacement started under
another worker id (a new pod, a new host:pid) takes the shards over immediately. Safety still rests on the epoch
fence alone: a worker that lost its session and comes back finds its leases re-taken and rolls back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ddbrepl.errors import LeaseLost


@dataclass(frozen=True, slots=True)
class Lease:
    stream_arn: str
    shard_id: str
    owner: str | None
    epoch: int
    expires_at: datetime | None


_PRESENCE = "ddbrepl.worker:"
"""Prefix of the advisory lock key (``hashtext(prefix || worker)``, 0) a worker holds while present."""


def present_sql(owner: str) -> str:
    """SQL: the worker named by the SQL expression ``owner`` holds its presence lock in some session."""
    return ("EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2 "
            "AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND k.classid = hashtext('{_PRESENCE}' || {owner})::oid AND k.objid = 0)")


def live_sql(alias: str = "") -> str:
    """SQL: the lease row (``alias.``-qualified columns) is live: held, unexpired, and its owner present."""
    owner = f"{alias}owner"
    return f"({owner} IS NOT NULL AND {alias}expires_at > now() AND {present_sql(owner)})"


def announce(conn: psycopg.Connection[Any], worker: str) -> bool:
    """Hold ``worker``'s presence lock in this session (until it ends); False if another session holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), 0)", (_PRESENCE + worker,)).fetchone()
    return bool(row and row[0])


def register(conn: psycopg.Connection[Any], arn: str, shard_ids: Sequence[str]) -> None:
    """Create free lease rows for newly listed shards (existing rows are left alone)."""
    conn.execute("INSERT INTO ddbrepl.leases (stream_arn, shard_id) SELECT %s, s FROM unnest(%s::text[]) AS u(s) "
                 "ON CONFLICT DO NOTHING", (arn, list(shard_ids)))


def fence(conn: psycopg.Connection[Any], arn: str, shard_id: str, owner: str, epoch: int, lease_seconds: float,
          *, release: bool = False) -> None:
    """Inside an apply transaction: renew (or with ``release`` give back) the lease, or raise LeaseLost."""
    cur = conn.execute(
        "UPDATE ddbrepl.leases SET owner = CASE WHEN %(release)s THEN NULL ELSE owner END, "
        "expires_at = CASE WHEN %(release)s THEN NULL ELSE now() + make_interval(secs => %(ttl)s) END "
        "WHERE stream_arn = %(arn)s AND shard_id = %(shard)s AND owner = %(owner)s AND epoch = %(epoch)s",
        {"release": release, "ttl": lease_seconds, "arn": arn, "shard": shard_id, "owner": owner, "epoch": epoch})
    if cur.rowcount != 1:
        raise LeaseLost(f"lease of shard {shard_id} (epoch {epoch}) is no longer held by {owner}",
                        hint="another worker took it over; the batch was rolled back and the shard dropped")


def heartbeat(conn: psycopg.Connection[Any], worker: str) -> None:
    """Announce that ``worker`` is alive (its share of the shards is computed from the live workers)."""
    conn.execute("INSERT INTO ddbrepl.workers (worker_id) VALUES (%s) ON CONFLICT (worker_id) "
                 "DO UPDATE SET heartbeat_at = now()", (worker,))


def leave(conn: psycopg.Connection[Any], worker: str) -> int:
    """Graceful stop: give back every lease of ``worker`` (epoch kept; the next owner bumps it) and unregister."""
    cur = conn.execute("UPDATE ddbrepl.leases SET owner = NULL, expires_at = NULL WHERE owner = %s", (worker,))
    conn.execute("DELETE FROM ddbrepl.workers WHERE worker_id = %s", (worker,))
    return max(cur.rowcount, 0)


_READY = (
    "SELECT l.shard_id, l.owner, l.epoch, " + live_sql("l.") + " AS live "
    "FROM ddbrepl.leases l "
    "JOIN ddbrepl.checkpoints c ON c.stream_arn = l.stream_arn AND c.shard_id = l.shard_id "
    "LEFT JOIN ddbrepl.checkpoints p ON p.stream_arn = c.stream_arn AND p.shard_id = c.parent_shard_id "
    "WHERE l.stream_arn = %s AND NOT c.finished AND (c.parent_shard_id IS NULL OR p.shard_id IS NULL OR p.finished) "
    "ORDER BY c.shard_id"
)
"""Unfinished shards whose parent is finished or unknown, with their owner and whether the lease is live (held,
unexpired, and its owner present)."""


def _live_workers(conn: psycopg.Connection[Any], lease_seconds: float) -> int:
    row = conn.execute("SELECT count(*) FROM ddbrepl.workers WHERE heartbeat_at > now() - make_interval(secs => %s) "
                       "AND " + present_sql("worker_id"), (lease_seconds,)).fetchone()
    return int(row[0]) if row else 0


_TAKE = ("UPDATE ddbrepl.leases SET owner = %(me)s, epoch = epoch + 1, "
         "expires_at = now() + make_interval(secs => %(ttl)s) WHERE stream_arn = %(arn)s AND shard_id = ANY(%(ids)s) ")
_TAKE_FREE = _TAKE + "AND NOT " + live_sql() + " RETURNING shard_id, epoch"
_STEAL = _TAKE + "AND owner = %(victim)s RETURNING shard_id, epoch"


def _take(conn: psycopg.Connection[Any], arn: str, ids: Sequence[str], worker: str, lease_seconds: float,
          victim: str | None = None) -> dict[str, int]:
    """Take the listed leases that are free or expired (or, with ``victim``, still held by that worker)."""
    if not ids:
        return {}
    params = {"me": worker, "ttl": lease_seconds, "arn": arn, "ids": list(ids), "victim": victim}
    rows = conn.execute(_TAKE_FREE if victim is None else _STEAL, params).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def balance(conn: psycopg.Connection[Any], arn: str, worker: str, lease_seconds: float, *,
            max_take: int | None = None, max_steal: int = 2) -> dict[str, int]:
    """One lease round for one stream, inside the caller's transaction; returns the leases held: shard → epoch.

    Renews every lease ``worker`` holds, then moves toward an equal share of the ready shards: free or expired
    leases first (at most ``max_take``), then at most ``max_steal`` from the most loaded live worker, never
    leaving it with fewer than the taker. Concurrent rounds of other workers are safe: every take re-checks its
    condition on the locked row, so two workers never both take one lease.
    """
    held = {r[0]: int(r[1]) for r in conn.execute(
        "UPDATE ddbrepl.leases SET expires_at = now() + make_interval(secs => %s) "
        "WHERE stream_arn = %s AND owner = %s RETURNING shard_id, epoch", (lease_seconds, arn, worker)).fetchall()}
    ready = conn.execute(_READY, (arn,)).fetchall()
    if not ready:
        return held
    workers = max(1, _live_workers(conn, lease_seconds))
    share = math.ceil(len(ready) / workers)
    mine = sum(1 for r in ready if r[0] in held)
    want = share - mine
    if want > 0:
        free = [r[0] for r in ready if not r[3]]
        if max_take is not None:
            want = min(want, max_take)
        got = _take(conn, arn, free[:want], worker, lease_seconds)
        held.update(got)
        mine += len(got)
    load = Counter(r[1] for r in ready if r[3] and r[1] != worker)
    if mine < share and load:
        victim, count = load.most_common(1)[0]
        n = min(max_steal, share - mine, (count - mine) // 2)  # never make the victim poorer than us
        if n > 0:
            theirs = [r[0] for r in ready if r[1] == victim and r[3]][-n:]
            held.update(_take(conn, arn, theirs, worker, lease_seconds, victim))
    return held


def owners(conn: psycopg.Connection[Any], arn: str | None = None) -> list[Lease]:
    """Every lease (of one stream, or all), for ``status`` and tests."""
    query = "SELECT stream_arn, shard_id, owner, epoch, expires_at FROM ddbrepl.leases"
    rows = (conn.execute(query + " WHERE stream_arn = %s ORDER BY shard_id", (arn,)) if arn is not None
            else conn.execute(query + " ORDER BY stream_arn, shard_id")).fetchall()
    return [Lease(*r) for r in rows]


def unclaimed(conn: psycopg.Connection[Any], arn: str) -> int:
    """Ready shards (see :func:`balance`) that no live worker holds: `tail --until-idle` is not done while any."""
    return sum(1 for r in conn.execute(_READY, (arn,)).fetchall() if not r[3])


def held_by_others(conn: psycopg.Connection[Any], arn: str, worker: str) -> dict[str, tuple[str, datetime]]:
    """Ready shards under a live lease of another worker: shard → (owner, expires_at).

    A lease that is live may still belong to a worker that just died; `tail --until-idle` waits until each one
    was renewed (its owner is alive and reading) or expired (then it is taken over).
    """
    rows = conn.execute(
        "SELECT l.shard_id, l.owner, l.expires_at FROM ddbrepl.leases l JOIN (" + _READY + ") r "
        "ON r.shard_id = l.shard_id WHERE l.stream_arn = %s AND r.live AND l.owner <> %s",
        (arn, arn, worker)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}
