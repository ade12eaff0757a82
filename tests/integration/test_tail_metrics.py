"""`tail --metrics-port`: Prometheus series for records, rows, batches and lag while tail runs."""

from __future__ import annotations

import threading
import time
import urllib.request
from decimal import Decimal

from ddbrepl.runners.init_schema import init_schema
from ddbrepl.runners.tail import tail
from ddbrepl.settings import Settings
from tests.conftest import free_port
from tests.helpers import ROOT, create_table, put_items


def test_metrics_are_served_while_tailing(aws_url: str, pg_url: str) -> None:
    settings = Settings(mappings=(ROOT / "mappings" / "employees.yaml",), database_url=pg_url, endpoint_url=aws_url,
                        region="us-east-1")
    create_table(aws_url, "Employees", [("Id", "N")])
    put_items(aws_url, "Employees", [{"Id": Decimal(i), "empName": f"e{i}"} for i in range(3)])
    init_schema(settings)
    port, stop = free_port(), threading.Event()
    worker = threading.Thread(target=tail, args=(settings, ("Employees",)),
                              kwargs={"progress": False, "stop": stop, "metrics_port": port}, daemon=True)
    worker.start()
    try:
        deadline, body = time.monotonic() + 60, ""
        while 'ddbrepl_records_total{table="Employees"} 3.0' not in body:
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            except OSError:
                continue
        assert 'ddbrepl_rows_applied_total{op="upsert",table="Employees"} 3.0' in body
        assert 'ddbrepl_batches_total{table="Employees"}' in body
        assert 'ddbrepl_lag_seconds{shard="' in body
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
