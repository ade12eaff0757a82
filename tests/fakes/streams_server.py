"""FakeStreams over HTTP: the fake stream served with DynamoDB Streams' JSON protocol on a loopback port.

Real `ddbrepl tail` processes (and boto3 clients with their fast path, signing and retries) then read the fake
exactly as they read AWS: point ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` at :attr:`StreamsServer.url` and keep
DynamoDB itself on moto with ``AWS_ENDPOINT_URL_DYNAMODB``. The test process keeps the :class:`FakeStreams` object
and writes, splits, expires and throttles it while the workers run. Errors are rendered the way AWS renders them
(``__type`` + ``message``, HTTP 400), so botocore raises the same exception classes.
"""

from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from botocore.exceptions import ClientError

from tests.fakes.streams import FakeStreams

OPERATIONS = {
    "DescribeStream": "describe_stream",
    "GetShardIterator": "get_shard_iterator",
    "GetRecords": "get_records",
}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = orjson.dumps(body, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "fake")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = orjson.loads(self.rfile.read(length) or b"{}")
        operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
        method = OPERATIONS.get(operation)
        if method is None:
            self._send(400, {"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException",
                             "message": f"the fake does not serve {operation}"})
            return
        try:
            result = getattr(self.server.fake, method)(**payload)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            self._send(status, {"__type": f"com.amazonaws.dynamodb.v20120810#{error.get('Code')}",
                                "message": error.get("Message", "")})
            return
        self._send(200, result)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStreams) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed with SIGKILL drops its connection: expected here, not worth a traceback."""
        return


class StreamsServer:
    """Serve ``fake`` on 127.0.0.1 until :meth:`close`; use as a context manager."""

    def __init__(self, fake: FakeStreams) -> None:
        self.fake = fake
        self._server = _Server(fake)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-streams", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StreamsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
