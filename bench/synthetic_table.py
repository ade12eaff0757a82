"""A synthetic DynamoDB endpoint for memory and speed runs at sizes moto cannot serve (a fake, named as such).

moto's parallel scan walks the whole table on every call, so a 500 000-item table takes it hours. This server, in
a child process, answers DescribeTable and Scan (Segment/TotalSegments, ExclusiveStartKey, Limit, 1 MB pages) for
a generated table of the Mixed items of tests/helpers.py: item ``i`` is a template item (one of 2 000, built
once) with its own keys, ``pk = user#<i % 97>``, ``sk = i``, in segment ``i % TotalSegments``. Real boto3 and the
real `ddbrepl backfill` talk to it over HTTP; only the server is fake.
"""

from __future__ import annotations

import base64
import multiprocessing
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.helpers import SERIALIZER, mixed_item

TABLE = "Mixed"
TEMPLATES = 2000
PAGE_BYTES = 1024 * 1024


def templates() -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for i in range(TEMPLATES):
        item = {k: SERIALIZER.serialize(v) for k, v in mixed_item(i, rng).items()}
        for k, v in item.items():  # B as base64 text, as on the wire
            if "B" in v:
                item[k] = {"B": base64.b64encode(v["B"]).decode()}
        out.append(item)
    return out


def item(pool: list[dict[str, Any]], i: int) -> dict[str, Any]:
    """Item ``i`` of the synthetic table, in DynamoDB JSON."""
    return {**pool[i % TEMPLATES], "pk": {"S": f"user#{i % 97}"}, "sk": {"N": str(i)}}


def _serve(items: int, port: int) -> None:
    pool = templates()
    describe = orjson.dumps({"Table": {
        "TableName": TABLE, "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}",
        "TableStatus": "ACTIVE", "ItemCount": items, "TableSizeBytes": items * 420,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"}]}})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            request = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            if op == "DescribeTable":
                body = describe
            elif op == "Scan":
                body = self.scan(request)
            else:
                body = b'{"__type": "com.amazon.coral.validate#ValidationException", "message": "unsupported"}'
            self.send_response(200 if op in ("DescribeTable", "Scan") else 400)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def scan(self, request: dict[str, Any]) -> bytes:
            segment, total = request.get("Segment", 0), request.get("TotalSegments", 1)
            start = request.get("ExclusiveStartKey")
            i = int(start["sk"]["N"]) + total if start else segment
            limit = request.get("Limit", 10**9)
            page: list[bytes] = []
            size, last = 0, None
            while i < items and len(page) < limit and size < PAGE_BYTES:
                body = orjson.dumps(item(pool, i))
                page.append(body)
                size += len(body)
                last, i = i, i + total
            out = b'{"Count":%d,"ScannedCount":%d,"Items":[' % (len(page), len(page)) + b",".join(page) + b"]"
            if i < items and last is not None:
                out += b',"LastEvaluatedKey":' + orjson.dumps({"pk": {"S": f"user#{last % 97}"},
                                                               "sk": {"N": str(last)}})
            return out + b',"ConsumedCapacity":{"TableName":"Mixed","CapacityUnits":%d}}' % max(1, size // 8192)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def synthetic_server(items: int) -> Iterator[str]:
    """Serve a synthetic table of ``items`` items from a child process; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = multiprocessing.get_context("fork").Process(target=_serve, args=(items, port), daemon=True)
    proc.start()
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.join(5)
