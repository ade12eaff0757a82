"""Empty a table's target tables before it is re-seeded from a fresh export (``backfill --restart``).

A re-seed replaces what the target holds with a consistent snapshot: rows that a stream change wrote
(``_ddb_seq`` set) would otherwise survive, because a backfill row never overwrites them, and rows deleted
while the stream was lost would linger. TRUNCATE is transactional: the runner commits it with the reset of the
run, so a crash leaves either the old rows and the old run, or neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from ddbrepl.mapping.model import Mapping
from ddbrepl.sink.statements import table


def truncate(conn: psycopg.Connection[Any], mappings: Sequence[Mapping]) -> None:
    """TRUNCATE every target and child table of ``mappings`` in one statement (children and parents together,
    so their foreign keys allow it); inside the caller's transaction, never commits."""
    refs = [table(m.target) for m in mappings] + [table(c.target) for m in mappings for c in m.children]
    if refs:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(refs)))
