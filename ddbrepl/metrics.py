"""Prometheus metrics for `tail --metrics-port N`, behind this one module (prometheus-client is an optional extra).

``serve(port)`` starts the exporter and returns a :class:`Metrics` the runner reports to; without a port the
runner uses :data:`NULL` (same methods, no cost, no import). prometheus-client is imported only inside
:func:`serve`/:class:`PrometheusMetrics`, so ddbrepl works without it unless metrics are asked for.

Series (``table`` is the DynamoDB table, ``shard`` the stream shard id):

- ``ddbrepl_records_total{table}``: stream records taken from shards (applied, skipped or dead-lettered);
- ``ddbrepl_rows_applied_total{table, op}``: rows written, ``op`` = upsert | delete | skipped (refused by a guard);
- ``ddbrepl_batches_total{table}``: committed batches;
- ``ddbrepl_dead_letters_total{table}``: changes written to ``ddbrepl.dead_letters``;
- ``ddbrepl_errors_total{table, kind}``: failures by exception type name (the batch was rolled back);
- ``ddbrepl_retries_total{table}``: batches scheduled again after a retriable failure;
- ``ddbrepl_lag_seconds{table, shard}``: now minus ApproximateCreationDateTime of the shard's last applied record,
  set at each commit (the value a reader of PostgreSQL waits, at most one second coarse: AWS rounds that time down
  to the second).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from ddbrepl.errors import ConfigError
from ddbrepl.records import ApplyStats

log = logging.getLogger(__name__)


class Metrics(Protocol):
    """What a runner reports; every method is cheap and thread-safe."""

    def batch(self, table: str, shard: str, records: int, stats: ApplyStats,
              last_event_at: datetime | None) -> None: ...

    def error(self, table: str, kind: str) -> None: ...

    def retry(self, table: str) -> None: ...

    def forget_shard(self, table: str, shard: str) -> None: ...


class NullMetrics:
    """Metrics that go nowhere (no ``--metrics-port``)."""

    def batch(self, table: str, shard: str, records: int, stats: ApplyStats,
              last_event_at: datetime | None) -> None:
        return None

    def error(self, table: str, kind: str) -> None:
        return None

    def retry(self, table: str) -> None:
        return None

    def forget_shard(self, table: str, shard: str) -> None:
        return None


NULL: Metrics = NullMetrics()


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError("--metrics-port needs the prometheus-client package",
                          "install it with: pip install 'ddbrepl[metrics]'") from None
    return prometheus_client


class PrometheusMetrics:
    """The series of the module docstring, in their own registry (so several instances never clash)."""

    def __init__(self) -> None:
        pc = _client()
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.records = pc.Counter("ddbrepl_records", "Stream records taken from shards", ["table"], registry=r)
        self.rows = pc.Counter("ddbrepl_rows_applied", "Rows written by the sink", ["table", "op"], registry=r)
        self.batches = pc.Counter("ddbrepl_batches", "Committed batches", ["table"], registry=r)
        self.dead_letters = pc.Counter("ddbrepl_dead_letters", "Changes written as dead letters", ["table"],
                                       registry=r)
        self.errors = pc.Counter("ddbrepl_errors", "Failed batches by error type", ["table", "kind"], registry=r)
        self.retries = pc.Counter("ddbrepl_retries", "Batches retried after a retriable failure", ["table"],
                                  registry=r)
        self.lag = pc.Gauge("ddbrepl_lag_seconds", "Now minus the last applied record's creation time",
                            ["table", "shard"], registry=r)
        self.server: Any = None

    def batch(self, table: str, shard: str, records: int, stats: ApplyStats,
              last_event_at: datetime | None) -> None:
        self.records.labels(table).inc(records)
        self.rows.labels(table, "upsert").inc(stats.upserts)
        self.rows.labels(table, "delete").inc(stats.deletes)
        self.rows.labels(table, "skipped").inc(stats.skipped)
        self.dead_letters.labels(table).inc(stats.rejected)
        self.batches.labels(table).inc()
        if last_event_at is not None:
            self.lag.labels(table, shard).set(max(0.0, (datetime.now(UTC) - last_event_at).total_seconds()))

    def error(self, table: str, kind: str) -> None:
        self.errors.labels(table, kind).inc()

    def retry(self, table: str) -> None:
        self.retries.labels(table).inc()

    def forget_shard(self, table: str, shard: str) -> None:
        """Drop a finished or lost shard's lag series, so dashboards do not show it frozen."""
        with contextlib.suppress(KeyError):  # never set, or already removed
            self.lag.remove(table, shard)

    def render(self) -> bytes:
        """The exposition text, as the HTTP endpoint serves it."""
        out: bytes = _client().generate_latest(self.registry)
        return out

    def close(self) -> None:
        """Stop the HTTP exporter, if :func:`serve` started one."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def serve(port: int, addr: str = "0.0.0.0") -> PrometheusMetrics:
    """Start the exporter on ``addr:port`` (``/metrics``, any path) in a daemon thread; returns its metrics.

    Port 0 picks a free port; ``metrics.server.server_port`` tells which. Raises ConfigError without
    prometheus-client or when the port is taken.
    """
    metrics = PrometheusMetrics()
    try:
        server, _thread = _client().start_http_server(port, addr=addr, registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
                          "choose another --metrics-port") from None
    metrics.server = server
    log.info("serving Prometheus metrics on http://%s:%d/metrics", addr, server.server_port)
    return metrics
