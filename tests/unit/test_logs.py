"""`--log-format json`: one JSON object per line, with the table/shard fields runners pass as ``extra``."""

from __future__ import annotations

import json
import logging

from ddbrepl.logs import JsonFormatter


def test_json_lines_carry_table_and_shard() -> None:
    record = logging.makeLogRecord({"name": "ddbrepl.runners.tail", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "applied %d upserts to %s", "args": (3, "Orders"),
                                    "table": "Orders", "shard": "shardId-0001", "lag_s": 1.5})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "applied 3 upserts to Orders"
    assert (doc["level"], doc["logger"]) == ("info", "ddbrepl.runners.tail")
    assert (doc["table"], doc["shard"], doc["lag_s"]) == ("Orders", "shardId-0001", 1.5)
    assert doc["time"].endswith("+00:00")
