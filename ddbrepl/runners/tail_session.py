"""The `tail` coordinator's own PostgreSQL session: lease rounds, presence, reconnects with backoff, leaving.

The session that runs the lease rounds also holds the worker's presence lock (:func:`ddbrepl.state.leases.announce`),
so other workers see this worker alive exactly as long as this session is open. A database that goes away is
retried with exponential backoff (0.5 s doubling to 15 s); the shard workers' own connections are separate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from ddbrepl.db import connect
from ddbrepl.errors import DdbreplError, Retriable
from ddbrepl.state import leases

log = logging.getLogger(__name__)
MAX_DELAY_S = 15.0


class ControlSession:
    def __init__(self, url: str, worker: str) -> None:
        self.url = url
        self.worker = worker
        self.conn: psycopg.Connection[Any] | None = None
        self.delay = 0.5
        self.next_try = 0.0
        self.present = False
        """Whether the current session holds this worker's presence lock."""
        self.warned = False

    def get(self) -> psycopg.Connection[Any] | None:
        """The open session, or None while the database is unreachable (a new one is announced by :meth:`announce`)."""
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        if time.monotonic() < self.next_try:
            return None
        try:
            self.conn = connect(self.url, autocommit=True)
            self.delay, self.present = 0.5, False
            return self.conn
        except Retriable as exc:
            log.warning("%s; retrying in %.1fs", exc.message, self.delay)
            self._back_off()
            return None

    def announce(self) -> None:
        """Hold this worker's presence lock on the session (once per session; retried every round)."""
        if self.present or self.conn is None:
            return
        self.present = leases.announce(self.conn, self.worker)
        if not self.present and not self.warned:
            self.warned = True
            log.warning("worker id %r is held by another live database session: another `tail` with the same "
                        "--worker-id, or this worker's previous session not yet ended by the server; its leases "
                        "then expire after --lease-seconds instead of at once (retried every round)", self.worker)

    def failed(self, exc: BaseException) -> None:
        """The session broke: close it and back off before the next try."""
        log.warning("database unavailable for the lease round (%s)", str(exc).splitlines()[0] if str(exc) else exc)
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self._back_off()

    def _back_off(self) -> None:
        self.next_try = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, MAX_DELAY_S)

    def leave(self) -> None:
        """Graceful stop: give every lease back and unregister, then close the session."""
        try:
            conn = self.conn if self.conn is not None and not self.conn.broken else connect(self.url, autocommit=True)
            with conn.transaction():
                given = leases.leave(conn, self.worker)
            log.info("worker %s gave back %d lease(s)", self.worker, given)
            conn.close()
        except (DdbreplError, psycopg.Error) as exc:
            log.warning("could not give back the leases of %s (%s); they expire by themselves", self.worker, exc)
