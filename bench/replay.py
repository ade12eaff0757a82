"""A replay endpoint for read benchmarks: serves Scan and Streams responses captured from moto, byte for byte.

moto renders a Scan page at about 2.6 ms per item, so against moto the server is the bottleneck and any client
gain hides in its shadow. DynamoDB answers a 1 MB page in tens of milliseconds; then the client's parsing (Python,
under the GIL, so parallel segments do not help) is what limits a reader. Replaying moto's own bytes from a
trivial HTTP server in another process puts a benchmark in that regime.

Capture with :func:`capture` (plain boto3 against moto), then ``with replay_server(capture) as url`` and point
any client at ``url``. Requests are matched on what identifies a page: Scan by (Segment, TotalSegments,
ExclusiveStartKey), GetRecords by ShardIterator; DescribeStream and GetShardIterator return their one capture.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import orjson

from ddbrepl.sources.fastpath import json_key


def scan_key(segment: int, total: int, start: Any) -> bytes:
    return orjson.dumps([segment, total, json_key(start) if start else None], option=orjson.OPT_SORT_KEYS)


@dataclass
class Capture:
    """Raw response bodies keyed by what selects them."""

    scans: dict[bytes, bytes] = field(default_factory=dict)
    records: dict[str, bytes] = field(default_factory=dict)
    describe_stream: bytes = b""
    shard_iterator: bytes = b""


def capture(url: str, table: str, arn: str, segments: int) -> Capture:
    """Read the whole table (``segments`` segments) and the stream's first shard once, keeping every body."""
    client = boto3.client("dynamodb", endpoint_url=url)
    streams = boto3.client("dynamodbstreams", endpoint_url=url)
    last: list[bytes] = []

    def grab(http_response: Any, **_: Any) -> None:
        last.append(http_response.content)

    for c in (client, streams):
        c.meta.events.register("after-call.*.*", grab)
    out = Capture()
    for segment in range(segments):
        start: Any = None
        while True:
            params: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": segments}
            if start:
                params["ExclusiveStartKey"] = start
            page = client.scan(**params)
            out.scans[scan_key(segment, segments, start)] = last[-1]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    desc = streams.describe_stream(StreamArn=arn)
    out.describe_stream = last[-1]
    shard = desc["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out.shard_iterator = last[-1]
    while True:
        got = streams.get_records(ShardIterator=it, Limit=1000)
        out.records[it] = last[-1]
        if not got["Records"]:
            break
        it = got["NextShardIterator"]
    return out


def _serve(cap: Capture, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like DynamoDB

        def do_POST(self) -> None:
            request = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            body: bytes | None
            if op == "Scan":
                key = scan_key(
                    request.get("Segment", 0), request.get("TotalSegments", 1), request.get("ExclusiveStartKey")
                )
                body = cap.scans.get(key)
            elif op == "GetRecords":
                body = cap.records.get(request.get("ShardIterator", ""))
            elif op == "DescribeStream":
                body = cap.describe_stream
            elif op == "GetShardIterator":
                body = cap.shard_iterator
            else:
                body = None
            status = 200 if body is not None else 400
            body = body if body is not None else b'{"__type": "ValidationException", "message": "not captured"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def replay_server(cap: Capture) -> Iterator[str]:
    """Serve ``cap`` from a child process on a free loopback port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = multiprocessing.get_context("fork").Process(target=_serve, args=(cap, port), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.join(5)
