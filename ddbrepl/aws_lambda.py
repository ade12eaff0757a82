"""AWS Lambda entry point: ``ddbrepl.aws_lambda.handler`` applies one event-source-mapping batch.

Configuration (environment of the function; see docs/lambda.md):

- ``DDBREPL_MAPPINGS``: mapping files or folders bundled with the function (default ``mappings`` under the task
  root);
- ``DDBREPL_DATABASE_URL``, or ``DDBREPL_DATABASE_SECRET_ID``: a Secrets Manager secret with ``username``,
  ``password``, ``host``, ``port``, ``dbname``, fetched once per execution environment and cached;
- ``DDBREPL_ENDPOINT_URL``: an AWS endpoint override (tests); ``DDBREPL_LOG_FORMAT``: ``json`` (default) or
  ``text``.

The whole batch is applied in ONE transaction (origin "lambda"): all of it or none. Conversion failures are dead
letters inside that transaction, not failures. Any other failure (database down, a constraint, a bad mapping)
returns ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber of the batch's first record>}]}``, so with
``ReportBatchItemFailures`` Lambda retries the batch from its start; re-applying it converges (upserts overwrite,
deletes repeat, dead letters are de-duplicated). The connection and compiled mappings live across warm
invocations; a broken connection is replaced, and a failure on a stale connection is retried once at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ddbrepl import logs
from ddbrepl.errors import ConfigError
from ddbrepl.records import ApplyStats
from ddbrepl.runners.common import TablePlan, aws_config, open_state, table_plans
from ddbrepl.runners.events import apply_groups, complete_items, match_plans, parse_records
from ddbrepl.settings import Settings, resolve
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.secrets import database_url, secret_string

log = logging.getLogger(__name__)

SECRET_ENV = "DDBREPL_DATABASE_SECRET_ID"


@dataclass
class _Runtime:
    """What one execution environment keeps between invocations."""

    settings: Settings
    plans: tuple[TablePlan, ...]
    conn: Any = None
    url_from_secret: bool = False
    dynamodb: Any = None
    """A DynamoDB client, made on first need (KEYS_ONLY / OLD_IMAGE streams: items are read by key)."""

    def dynamodb_client(self) -> Any:
        if self.dynamodb is None:
            self.dynamodb = dynamodb_client(aws_config(self.settings))
        return self.dynamodb

    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        secret_id = os.environ.get(SECRET_ENV)
        if not secret_id:
            raise ConfigError("no database configured for the Lambda function",
                              f"set DDBREPL_DATABASE_URL or {SECRET_ENV}")
        url = database_url(secret_string(aws_config(self.settings), secret_id), f"secret {secret_id!r}")
        self.settings = replace(self.settings, database_url=url)
        self.url_from_secret = True
        return url

    def connection(self) -> Any:
        """The cached connection, or a new one when there is none or it broke."""
        if self.conn is not None and (self.conn.closed or self.conn.broken):
            self.drop()
        if self.conn is None:
            self.database_url()
            self.conn = open_state(self.settings, autocommit=True)
        return self.conn

    def drop(self, *, forget_secret: bool = False) -> None:
        """Close the connection; with ``forget_secret``, fetch the secret again next time (rotation)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # closing a dead socket must not mask the original failure
                log.debug("closing a broken connection failed", exc_info=True)
            self.conn = None
        if forget_secret and self.url_from_secret:
            self.settings = replace(self.settings, database_url=None)
            self.url_from_secret = False


_RUNTIME: _Runtime | None = None


def _runtime() -> _Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        logs.configure(1, os.environ.get("DDBREPL_LOG_FORMAT", "json"))
        settings = resolve()
        _RUNTIME = _Runtime(settings, tuple(table_plans(settings)))
        log.info("loaded %d mapping(s) for %d table(s)", sum(len(p.converters) for p in _RUNTIME.plans),
                 len(_RUNTIME.plans))
    return _RUNTIME


def reset() -> None:
    """Forget the cached connection, mappings and secret (tests; a configuration reload)."""
    global _RUNTIME
    if _RUNTIME is not None:
        _RUNTIME.drop()
    _RUNTIME = None


def _first_sequence(event: Mapping[str, Any]) -> str | None:
    try:
        return str(event["Records"][0]["dynamodb"]["SequenceNumber"])
    except (KeyError, IndexError, TypeError):
        return None


def _apply(rt: _Runtime, event: Mapping[str, Any]) -> dict[str, ApplyStats]:
    pairs = match_plans(rt.plans, parse_records(event))
    pairs = complete_items(rt.dynamodb_client, pairs)
    for attempt in (1, 2):
        conn = rt.connection()
        fresh = attempt == 2
        try:
            with conn.transaction():
                return apply_groups(conn, pairs, origin="lambda")
        except Exception:
            if fresh or not (conn.closed or conn.broken):
                raise
            # A connection the server dropped while the environment was frozen: one retry on a new one.
            log.warning("the database connection was broken; reconnecting once")
            rt.drop()
    raise AssertionError("unreachable")


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Apply a DynamoDB stream batch; report the first record as failed when the batch could not be applied."""
    started = time.monotonic()
    request = getattr(context, "aws_request_id", None)
    if not event.get("Records"):
        return {"batchItemFailures": []}
    first = _first_sequence(event)
    try:
        rt = _runtime()
        stats = _apply(rt, event)
    except Exception as exc:
        log.exception("batch of %d record(s) failed; Lambda will retry from sequence %s",
                      len(event["Records"]), first, extra={"request_id": request, "error": type(exc).__name__})
        if _RUNTIME is not None:
            conn = _RUNTIME.conn
            if conn is None:  # could not connect: maybe the secret was rotated, so read it again next time
                _RUNTIME.drop(forget_secret=True)
            elif conn.closed or conn.broken:
                _RUNTIME.drop()
        # An empty itemIdentifier would also fail the whole batch; the sequence number makes it explicit.
        return {"batchItemFailures": [{"itemIdentifier": first or ""}]}
    for table, s in stats.items():
        log.info("applied %d record(s) to %s: %d upserted, %d deleted, %d dead letter(s) in %.0f ms",
                 len(event["Records"]), table, s.upserts, s.deletes, s.rejected,
                 (time.monotonic() - started) * 1000,
                 extra={"table": table, "request_id": request, "upserts": s.upserts, "deletes": s.deletes,
                        "dead_letters": s.rejected})
    return {"batchItemFailures": []}
