"""Forget where `tail` was in a table's stream, so that after a re-seed it starts over from the backfill's point
in time.

When the stream was trimmed past a checkpoint (``tail`` fell more than 24 h behind), those checkpoints are
useless: reading on from them fails again. Deleting a table's checkpoint and lease rows makes the next ``tail``
list the shards afresh, read them from TRIM_HORIZON, and skip records older than the new backfill's point in
time minus the hand-off margin (``runners/tail_feeds.py``). ``ddbrepl.streams`` (the followed ARN) is kept.
Only while no ``tail`` serves the table: a running one would find its checkpoint gone and stop its shards.
"""

from __future__ import annotations

from typing import Any

import psycopg


def forget_stream_positions(conn: psycopg.Connection[Any], source_table: str) -> int:
    """Delete the checkpoints (and their leases) of ``source_table``'s stream shards, inside the caller's
    transaction; returns how many checkpoints were removed."""
    conn.execute(
        "DELETE FROM ddbrepl.leases AS l USING ddbrepl.checkpoints AS c WHERE c.source_table = %s "
        "AND l.stream_arn = c.stream_arn AND l.shard_id = c.shard_id", (source_table,))
    cur = conn.execute("DELETE FROM ddbrepl.checkpoints WHERE source_table = %s", (source_table,))
    return cur.rowcount
