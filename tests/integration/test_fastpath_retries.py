"""The fast response path keeps botocore's retries: a scripted fake endpoint over real HTTP throttles and fails.

moto never throttles, so a tiny fake DynamoDB endpoint (loopback HTTP, scripted responses) plays the service:
botocore signs, sends, parses errors and retries exactly as against AWS, and only successful bodies take the
orjson path.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ddbrepl.errors import Retriable
from ddbrepl.sources.aws import AwsConfig, dynamodb_client, streams_client
from ddbrepl.sources.scan import scan_segment
from ddbrepl.sources.stream import read

SCAN_BODY = {"Items": [{"pk": {"S": "a"}, "b": {"B": "AAE="}}], "Count": 1, "ScannedCount": 1}


class FakeDynamoEndpoint:
    """Answers each POST with the next scripted (status, JSON body); records the X-Amz-Target of each request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.targets: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.targets.append(self.headers.get("X-Amz-Target", ""))
                status, body = endpoint.script.pop(0) if endpoint.script else (500, {"__type": "Empty"})
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def endpoint() -> Iterator[FakeDynamoEndpoint]:
    fake = FakeDynamoEndpoint()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def error(code: str) -> dict[str, Any]:
    return {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "slow down"}


def config(url: str, attempts: int) -> AwsConfig:
    return AwsConfig(endpoint_url=url, region="us-east-1", max_attempts=attempts)  # adaptive, the default


def test_throttled_scan_calls_are_retried_then_parsed_by_the_fast_path(endpoint: FakeDynamoEndpoint) -> None:
    endpoint.script = [
        (400, error("ThrottlingException")),
        (400, error("ProvisionedThroughputExceededException")),
        (200, SCAN_BODY),
    ]
    pages = list(scan_segment(dynamodb_client(config(endpoint.url, 5)), "T", 0, 1, None))
    assert [list(p.items) for p in pages] == [SCAN_BODY["Items"]]
    assert isinstance(pages[0].items[0]["b"]["B"], str)  # the fast path did parse the body
    assert endpoint.targets == ["DynamoDB_20120810.Scan"] * 3


def test_throttling_beyond_the_attempts_is_retriable(endpoint: FakeDynamoEndpoint) -> None:
    endpoint.script = [(400, error("ProvisionedThroughputExceededException"))] * 2
    with pytest.raises(Retriable, match="throttled"):
        list(scan_segment(dynamodb_client(config(endpoint.url, 2)), "T", 0, 1, None))
    assert len(endpoint.targets) == 2


def test_a_server_error_is_retried_and_get_records_parses_fast(endpoint: FakeDynamoEndpoint) -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {"ApproximateCreationDateTime": 1795600000.0, "Keys": {"k": {"N": "1"}}, "SequenceNumber": "42"},
    }
    endpoint.script = [(500, {"__type": "InternalServerError"}), (200, {"Records": [record]})]
    batch = read(streams_client(config(endpoint.url, 3)), "shardId-x", "iterator")
    assert [c.sequence for c in batch.changes] == [42] and batch.next_iterator is None
    assert batch.changes[0].approx_time is not None and batch.changes[0].approx_time.timestamp() == 1795600000.0
    assert endpoint.targets == ["DynamoDBStreams_20120810.GetRecords"] * 2
