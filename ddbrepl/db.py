"""The only place PostgreSQL connections are opened; URLs are masked in every message."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ddbrepl.errors import ConfigError, Retriable

log = logging.getLogger(__name__)
T = TypeVar("T")
APPLICATION_NAME = "ddbrepl"


def mask(url: str) -> str:
    """The URL or conninfo string with any password replaced by ``***``."""
    masked = re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", masked, flags=re.IGNORECASE)


def describe(url: str) -> str:
    """A short, password-free description: ``dbname on host:port``."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return mask(url)
    host = info.get("host") or "local socket"
    port = f":{info['port']}" if info.get("port") else ""
    return f"database {info.get('dbname') or info.get('user') or '?'} on {host}{port}"


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open a connection; failures become ConfigError (bad URL) or Retriable (server unreachable)."""
    try:
        conninfo = make_conninfo(url, application_name=APPLICATION_NAME)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid database URL {mask(url)}: {exc}",
                          "use postgresql://user:password@host:5432/dbname") from None
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise Retriable(f"cannot connect to {describe(url)}: {reason}",
                        "check --database-url / DDBREPL_DATABASE_URL and that the server is up") from None


def with_reconnect(url: str, work: Callable[[psycopg.Connection[Any]], T], *, attempts: int = 8,
                   first_delay: float = 0.5, max_delay: float = 15.0) -> T:
    """Run ``work`` on a fresh connection, reconnecting with exponential backoff when the server goes away.

    ``work`` must be idempotent as a whole (it owns its transactions), since a retry runs it again.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            with connect(url) as conn:
                return work(conn)
        except (Retriable, psycopg.OperationalError) as exc:
            if attempt == attempts:
                raise Retriable(f"giving up after {attempts} attempts: {mask(str(exc))}") from None
            log.warning("database unavailable (%s); retrying in %.1fs", mask(str(exc).splitlines()[0]), delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")
