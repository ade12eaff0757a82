"""ddbrepl.metrics: the Prometheus exporter over real HTTP, and the null variant."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from ddbrepl import metrics
from ddbrepl.errors import ConfigError
from ddbrepl.records import ApplyStats


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_serve_counts_batches_and_lag_per_shard() -> None:
    m = metrics.serve(0, addr="127.0.0.1")
    try:
        port = m.server.server_port
        m.batch("Orders", "shard-1", 5, ApplyStats(upserts=3, deletes=1, skipped=0, rejected=1),
                datetime.now(UTC) - timedelta(seconds=30))
        m.batch("Orders", "shard-1", 2, ApplyStats(upserts=2), None)
        m.retry("Orders")
        m.error("Orders", "OperationalError")
        text = scrape(port)
        assert 'ddbrepl_records_total{table="Orders"} 7.0' in text
        assert 'ddbrepl_rows_applied_total{op="upsert",table="Orders"} 5.0' in text
        assert 'ddbrepl_rows_applied_total{op="delete",table="Orders"} 1.0' in text
        assert 'ddbrepl_batches_total{table="Orders"} 2.0' in text
        assert 'ddbrepl_dead_letters_total{table="Orders"} 1.0' in text
        assert 'ddbrepl_retries_total{table="Orders"} 1.0' in text
        assert 'ddbrepl_errors_total{kind="OperationalError",table="Orders"} 1.0' in text
        lag = next(line for line in text.splitlines() if line.startswith("ddbrepl_lag_seconds{"))
        assert 'shard="shard-1"' in lag and 29.0 <= float(lag.rsplit(" ", 1)[1]) < 60
        m.forget_shard("Orders", "shard-1")
        m.forget_shard("Orders", "shard-1")  # twice is harmless
        assert "ddbrepl_lag_seconds{" not in scrape(port)
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            metrics.serve(port, addr="127.0.0.1")
    finally:
        m.close()


def test_null_metrics_accept_everything() -> None:
    metrics.NULL.batch("T", "s", 1, ApplyStats(upserts=1), datetime.now(UTC))
    metrics.NULL.error("T", "X")
    metrics.NULL.retry("T")
    metrics.NULL.forget_shard("T", "s")
    assert isinstance(metrics.NULL, metrics.NullMetrics)
