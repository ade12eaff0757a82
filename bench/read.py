"""Read speed of the DynamoDB sources: bare boto3 against ddbrepl's fast response path, on one moto table.

    .venv/bin/python -m bench.read --items 20000 [--segments 4] [--repeat 2] [--endpoint http://…]

One table of ``--items`` mixed-type items with a NEW_AND_OLD_IMAGES stream (so the stream holds as many INSERT
records). Measured in the same run, each several times in alternating order:

- Scan: (a) a bare boto3 parallel scan (threads, one plain client); (b) ``sources.scan.scan_segment`` on the
  fast path; (c) the same on plain boto3 parsing (separates the fast path from ddbrepl's own overhead);
- GetRecords: (a) a bare boto3 GetRecords loop (Limit 1000) over the shard; (b) ``sources.stream.read`` on the
  fast path;
- Parse only: the captured HTTP bodies of those Scan and GetRecords pages parsed by botocore's parser and by
  orjson, with no server in the loop. moto renders responses slowly, so wall-clock ratios against moto
  understate what the fast path saves against DynamoDB, where the client's parsing is a larger share.

Wall time is for the whole read; "client CPU" is this process's CPU time (moto runs in a child process), which is
what the fast path reduces.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
import orjson
from botocore.parsers import create_parser

from bench.replay import capture, replay_server

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
from ddbrepl.sources import fastpath
from ddbrepl.sources.aws import AwsConfig, dynamodb_client, streams_client
from ddbrepl.sources.scan import scan_segment
from ddbrepl.sources.stream import describe_stream, get_iterator, read

TABLE = "BenchRead"


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in a child process (its own GIL and CPU accounting), on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([exe, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/moto-api/").close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a busy werkzeug may ignore SIGTERM for a while
            proc.kill()
            proc.wait(10)


def item(i: int) -> dict[str, Any]:
    """About 400 bytes of mixed types, the kind of item a replication reads."""
    return {
        "pk": {"S": f"customer#{i:08d}"},
        "sk": {"N": str(i % 97)},
        "name": {"S": f"Customer {i} Müller"},
        "email": {"S": f"customer{i}@example.com"},
        "balance": {"N": f"{i * 13.37:.2f}"},
        "active": {"BOOL": i % 3 != 0},
        "tags": {"SS": ["gold", f"t{i % 5}"]},
        "avatar": {"B": bytes(range(i % 200, i % 200 + 32))},
        "address": {"M": {"city": {"S": "Lyon"}, "zip": {"S": f"{69000 + i % 10}"}, "geo": {"NS": ["45.76", "4.83"]}}},
        "orders": {"L": [{"M": {"id": {"N": str(i * 10 + k)}, "total": {"N": f"{k * 9.99:.2f}"}}} for k in range(3)]},
        "note": {"NULL": True},
    }


def seed(url: str, items: int) -> str:
    client = boto3.client("dynamodb", endpoint_url=url)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for start in range(0, items, 25):
        batch = [{"PutRequest": {"Item": item(i)}} for i in range(start, min(start + 25, items))]
        client.batch_write_item(RequestItems={TABLE: batch})
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    return str(arn)


def bare_scan(client: Any, segments: int) -> int:
    def one(segment: int) -> int:
        count, params = 0, {"TableName": TABLE, "Segment": segment, "TotalSegments": segments}
        while True:
            page = client.scan(**params)
            count += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return count
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(one, range(segments)))


def ddbrepl_scan(client: DynamoDBClient, segments: int) -> int:
    def one(segment: int) -> int:
        return sum(len(p.items) for p in scan_segment(client, TABLE, segment, segments, None))

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(one, range(segments)))


def bare_get_records(client: Any, arn: str, total: int) -> int:
    shard = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    it, count = iterator["ShardIterator"], 0
    while count < total:
        page = client.get_records(ShardIterator=it, Limit=1000)
        count += len(page["Records"])
        it = page["NextShardIterator"]
    return count


def ddbrepl_get_records(streams: DynamoDBStreamsClient, arn: str, total: int) -> int:
    shard = describe_stream(streams, arn).shards[0]
    it, count = get_iterator(streams, arn, shard.id, None), 0
    while count < total and it is not None:
        batch = read(streams, shard.id, it)
        count += len(batch.changes)
        it = batch.next_iterator
    return count


def measure(run: Callable[[], int]) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    count = run()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def compare(title: str, runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, tuple[float, float]]:
    """Run each variant ``repeat`` times in rotating order; report the median wall and CPU seconds."""
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    counts: dict[str, int] = {}
    names = list(runs)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu, counts[name] = measure(runs[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    out = {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in runs}
    base_wall, base_cpu = out[names[0]]
    print(f"\n{title}")
    for name in names:
        wall, cpu = out[name]
        print(
            f"  {name:<34} {counts[name]:>7} in {wall:7.2f} s = {counts[name] / wall:8.0f} /s"
            f"   wall {wall / base_wall:5.2f}×   client CPU {cpu:6.2f} s ({cpu / base_cpu:4.2f}×)"
        )
    return out


def parse_only(service: str, operation: str, bodies: list[bytes], key: str, repeat: int) -> None:
    model = boto3.client(service, region_name="us-east-1").meta.service_model.operation_model(operation)
    parser = create_parser("json")
    count = sum(len(orjson.loads(b)[key]) for b in bodies)

    def botocore_parse() -> None:
        for body in bodies:
            parser.parse({"body": body, "headers": {}, "status_code": 200}, model.output_shape)

    def orjson_parse() -> None:
        for body in bodies:
            orjson.loads(body)

    def fast_path_parse() -> None:
        for body in bodies:
            fastpath.loads(body)

    def cpu_of(fn: Callable[[], None]) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    timings = {
        "botocore parser": min(cpu_of(botocore_parse) for _ in range(repeat)),
        "orjson": min(cpu_of(orjson_parse) for _ in range(repeat)),
        "orjson, GC paused (the fast path)": min(cpu_of(fast_path_parse) for _ in range(repeat)),
    }
    print(f"\nparse only, {operation}: {len(bodies)} bodies, {count} {key.lower()}, {sum(map(len, bodies)) >> 10} KiB")
    for name, cpu in timings.items():
        print(f"  {name:<34} {cpu:6.3f} s = {count / cpu:9.0f} /s")
    for name in ("orjson", "orjson, GC paused (the fast path)"):
        print(f"  botocore / {name:<34} {timings['botocore parser'] / timings[name]:.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each variant against moto")
    parser.add_argument("--replay-repeat", type=int, default=5, help="runs of each variant against the replay")
    parser.add_argument("--endpoint", help="an already running moto server (default: start one)")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with moto_server() if args.endpoint is None else _given(args.endpoint) as url:
        started = time.perf_counter()
        arn = seed(url, args.items)
        print(f"seeded {args.items} items (and as many stream records) in {time.perf_counter() - started:.1f} s")
        run_all(url, arn, args, "moto", args.repeat)
        cap = capture(url, TABLE, arn, args.segments)
    with replay_server(cap) as url:
        run_all(url, arn, args, "replay of moto's bytes", args.replay_repeat)
    parse_only("dynamodb", "Scan", list(cap.scans.values()), "Items", max(3, args.repeat))
    parse_only("dynamodbstreams", "GetRecords", list(cap.records.values()), "Records", max(3, args.repeat))


def run_all(url: str, arn: str, args: argparse.Namespace, server: str, repeat: int) -> None:
    """Both comparisons against one server; every client is made before the clock starts."""
    bare_db = boto3.client("dynamodb", endpoint_url=url)
    bare_streams = boto3.client("dynamodbstreams", endpoint_url=url)
    fast_db = dynamodb_client(AwsConfig(endpoint_url=url, fast_path=True))
    slow_db = dynamodb_client(AwsConfig(endpoint_url=url, fast_path=False))
    fast_streams = streams_client(AwsConfig(endpoint_url=url, fast_path=True))
    compare(
        f"Scan, {args.segments} segments in parallel, against {server}",
        {
            "bare boto3 parallel scan": lambda: bare_scan(bare_db, args.segments),
            "ddbrepl scan_segment, fast path": lambda: ddbrepl_scan(fast_db, args.segments),
            "ddbrepl scan_segment, boto3 parse": lambda: ddbrepl_scan(slow_db, args.segments),
        },
        repeat,
    )
    compare(
        f"GetRecords over the stream (Limit 1000), against {server}",
        {
            "bare boto3 GetRecords loop": lambda: bare_get_records(bare_streams, arn, args.items),
            "ddbrepl stream.read, fast path": lambda: ddbrepl_get_records(fast_streams, arn, args.items),
        },
        repeat,
    )


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
