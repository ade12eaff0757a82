"""Apply ``migrations/NNNN_name.sql`` to the control schema ``ddbrepl``, in order, each recorded once.

The version table is created first; every migration runs inside the caller's transaction under an advisory lock,
so two processes starting at once do not both apply the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from ddbrepl.errors import Fatal

BOOTSTRAP = (
    "CREATE SCHEMA IF NOT EXISTS ddbrepl",
    "CREATE TABLE IF NOT EXISTS ddbrepl.schema_version (\n"
    "    version    integer     PRIMARY KEY,\n"
    "    name       text        NOT NULL,\n"
    "    applied_at timestamptz NOT NULL DEFAULT now()\n)",
)
_LOCK_KEY = 0x64646272  # "ddbr": one advisory lock for all of ddbrepl's migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    out = []
    for entry in resources.files("ddbrepl").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda mig: mig.version)
    if [mig.version for mig in out] != list(range(1, len(out) + 1)):
        raise Fatal("migrations are not numbered 0001, 0002, … without gaps", "reinstall ddbrepl")
    return out


def applied(conn: psycopg.Connection[Any]) -> set[int]:
    """Versions already recorded; empty when the control schema does not exist yet."""
    row = conn.execute("SELECT to_regclass('ddbrepl.schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return set()
    return {r[0] for r in conn.execute("SELECT version FROM ddbrepl.schema_version")}


def pending(conn: psycopg.Connection[Any] | None) -> list[Migration]:
    """Migrations not yet applied (all of them without a connection)."""
    done = applied(conn) if conn is not None else set()
    return [m for m in available() if m.version not in done]


def statements(migrations: list[Migration]) -> list[str]:
    """The SQL that applying ``migrations`` runs, for ``--dry-run``."""
    out = list(BOOTSTRAP) if migrations else []
    for m in migrations:
        out.append(m.sql.strip())
        out.append(f"INSERT INTO ddbrepl.schema_version (version, name) VALUES ({m.version}, '{m.name}')")
    return out


def apply(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply what is pending, inside the caller's transaction; return what was applied."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    todo = pending(conn)
    if not todo:
        return []
    for stmt in BOOTSTRAP:
        conn.execute(stmt)
    for m in todo:
        conn.execute(m.sql)
        conn.execute("INSERT INTO ddbrepl.schema_version (version, name) VALUES (%s, %s)", (m.version, m.name))
    return todo


def require(conn: psycopg.Connection[Any]) -> None:
    """Raise with the fix when the control schema is missing or older than this ddbrepl."""
    if pending(conn):
        raise Fatal("the control schema `ddbrepl` is missing or out of date in this database",
                    "run `ddbrepl init-schema` first")
