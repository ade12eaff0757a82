"""`ddbrepl tail --until-idle` against the bare boto3 GetRecords loop of the same run, and 1/2/4 workers.

    .venv/bin/python -m bench.tail --records 20000 [--moto-records 3000] [--workers 1,2,4]

Every endpoint runs in its own process, so none shares a GIL with the process measured:

(A) moto: a Mixed table with a NEW_AND_OLD_IMAGES stream holding ``--moto-records`` INSERT records. moto renders a
    GetRecords page at about 3 ms per record, so both sides wait mostly on moto: this ratio cannot go far below 1.
(B) fast stream: the same kind of records (``--records`` of them, one shard) built with FakeStreams, rendered to
    bytes once and served from a forked child process, as fast as DynamoDB answers, so the client's work shows. moto
    still answers DescribeTable. (a) a bare boto3 GetRecords loop (Limit 1000) over the shard, records discarded;
    (b) `ddbrepl tail --until-idle` as a child process: read, convert, apply to PostgreSQL, checkpoint — measured
    as wall time of the process and as the run time it reports (without interpreter start-up).
    Target: b/a ≤ 0.6.
(C) scale-out: the fast stream with 8 shards (one of them split), ``--records`` records, read by 1, 2 and 4
    `ddbrepl tail --until-idle` processes sharing it through leases; records/s until every record is applied.

Measured here (2 cores shared with PostgreSQL, the servers and other work; load average 4–5), --records 80000:
(B) bare loop 28.9 s, tail 11.9 s wall (11.2 s run): b/a = 0.41. (C) 1 worker 10 100 records/s, 2 workers 7 000/s,
4 workers 8 300/s: on two cores a second process has no core of its own (PostgreSQL and the stream server need
them too), and every lease a newcomer steals costs the victim's batch in flight (rolled back by the fence).
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import orjson
import psycopg

from bench.apply import database
from bench.read import moto_server
from tests.fakes.streams import FakeStreams
from tests.helpers import ROOT, SERIALIZER, create_table, mixed_item, put_items

TABLE = "Mixed"
MAPPINGS = str(ROOT / "tests" / "mappings" / "mixed")


def wire(value: dict[str, Any]) -> dict[str, Any]:
    """A serialized attribute as JSON carries it: B and BS as base64 text."""
    (tag, inner), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(bytes(inner)).decode()}
    if tag == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode() for b in inner]}
    if tag == "M":
        return {"M": {k: wire(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [wire(v) for v in inner]}
    return value


def fill(fake: FakeStreams, records: int, shards: int) -> None:
    rng = random.Random(records)
    roots = [fake.add_shard() for _ in range(shards)]
    for i in range(records):
        image = {k: wire(SERIALIZER.serialize(v)) for k, v in mixed_item(i, rng).items()}
        fake.put("INSERT", {"pk": image["pk"], "sk": image["sk"]}, new=image)
        if shards > 1 and i == records // 2:
            fake.split(roots[0])


class Pages:
    """The fake stream's GetRecords answers rendered to bytes once, before anything is timed.

    Iterators are ``shard|position``; a page is records[position:position + 1000]. Positions other than page
    starts (AFTER_SEQUENCE_NUMBER after a lease moved) are rendered on demand. Only what `tail` calls is served.
    """

    def __init__(self, fake: FakeStreams) -> None:
        self.fake = fake
        self.describe = orjson.dumps(fake.describe_stream(StreamArn=fake.arn, Limit=100), default=_epoch)
        self.cache: dict[str, bytes] = {}
        for shard in fake.shards.values():
            for pos in range(0, len(shard.records) + 1, 1000):
                self.page(f"{shard.id}|{pos}")

    def page(self, token: str) -> bytes:
        body = self.cache.get(token)
        if body is None:
            shard_id, pos_text = token.split("|")
            shard, pos = self.fake.shards[shard_id], int(pos_text)
            records = [self.fake._render(r) for r in shard.records[pos:pos + 1000]]
            out: dict[str, Any] = {"Records": records}
            end = pos + len(records)
            if shard.ending_sequence is None or end < len(shard.records):
                out["NextShardIterator"] = f"{shard_id}|{end}"
            body = self.cache[token] = orjson.dumps(out, default=_epoch)
        return body

    def iterator(self, request: dict[str, Any]) -> bytes:
        shard = self.fake.shards[request["ShardId"]]
        pos = 0
        if request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER":
            after = int(request["SequenceNumber"])
            pos = sum(1 for r in shard.records if int(r["dynamodb"]["SequenceNumber"]) <= after)
        elif request["ShardIteratorType"] == "LATEST":
            pos = len(shard.records)
        return orjson.dumps({"ShardIterator": f"{shard.id}|{pos}"})


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value).__name__)


def _serve(fake: FakeStreams, ready: Any) -> None:
    pages = Pages(fake)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            request = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            if op == "GetRecords":
                body = pages.page(request["ShardIterator"])
            elif op == "GetShardIterator":
                body = pages.iterator(request)
            else:
                body = pages.describe
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.send(f"http://127.0.0.1:{server.server_address[1]}")
    server.serve_forever()


@contextmanager
def fast_stream(arn: str, records: int, shards: int) -> Iterator[str]:
    """FakeStreams with ``records`` records, pre-rendered and served from a forked child process; yields its URL."""
    fake = FakeStreams(arn, table=TABLE, epoch_times=True)
    fill(fake, records, shards)
    parent, child = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=_serve, args=(fake, child), daemon=True)
    proc.start()
    try:
        yield str(parent.recv())
    finally:
        proc.terminate()
        proc.join(5)


def bare_loop(url: str, arn: str) -> int:
    client = boto3.client("dynamodbstreams", endpoint_url=url)
    total = 0
    for shard in client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it: str | None = client.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = client.get_records(ShardIterator=it, Limit=1000)
            total += len(page["Records"])
            it = page.get("NextShardIterator") if page["Records"] else None
    return total


def ddbrepl(pg_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "ddbrepl", "--database-url", pg_url, "--mappings", MAPPINGS, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def tail_run(pg_url: str, env: dict[str, str], workers: int = 1) -> tuple[float, float]:
    """(wall seconds of the slowest process, run seconds it reported) for ``workers`` `tail --until-idle`."""
    started = time.perf_counter()
    procs = [ddbrepl(pg_url, "tail", "--until-idle", "--no-progress", "--lease-seconds", "5",
                     "--worker-id", f"bench-{i}", env=env) for i in range(workers)]
    reported = 0.0
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"tail failed:\n{out}\n{err}")
        m = re.search(r"after ([\d.]+)s", out)
        reported = max(reported, float(m.group(1)) if m else 0.0)
    return time.perf_counter() - started, reported


def reset(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE mixed, ddbrepl.checkpoints, ddbrepl.leases, ddbrepl.streams, ddbrepl.workers")


def applied(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT coalesce(sum(records), 0) FROM ddbrepl.checkpoints").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--moto-records", type=int, default=3_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--parts", default="ABC", help="Which of the parts A, B, C to run.")
    args = parser.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    with moto_server() as moto, database(durable=False) as pg_url:
        create_table(moto, TABLE, [("pk", "S"), ("sk", "N")], stream="NEW_AND_OLD_IMAGES")
        arn = boto3.client("dynamodb", endpoint_url=moto).describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        subprocess.run([sys.executable, "-m", "ddbrepl", "--database-url", pg_url, "--mappings", MAPPINGS,
                        "init-schema"], check=True, capture_output=True)

        if "A" in args.parts:
            part_a(moto, pg_url, arn, args.moto_records)
        if "B" in args.parts:
            part_b(moto, pg_url, arn, args.records)
        if "C" in args.parts:
            part_c(moto, pg_url, arn, args.records, [int(w) for w in args.workers.split(",")])


def part_a(moto: str, pg_url: str, arn: str, records: int) -> None:
    print(f"(A) moto, {records:,} records")
    rng = random.Random(1)
    put_items(moto, TABLE, [mixed_item(i, rng) for i in range(records)])
    env = {"AWS_ENDPOINT_URL": moto}
    started = time.perf_counter()
    n = bare_loop(moto, arn)
    a = time.perf_counter() - started
    assert n == records, n
    wall, run = tail_run(pg_url, env)
    assert applied(pg_url) == n
    print(f"  (a) bare boto3 GetRecords loop   {a:7.2f} s  {n / a:>9,.0f} records/s")
    print(f"  (b) ddbrepl tail --until-idle    {wall:7.2f} s  {n / wall:>9,.0f} records/s  (run {run:.2f} s)")
    print(f"  b/a = {wall / a:.2f} wall, {run / a:.2f} run   (moto-bound: both wait on its rendering)")



def part_b(moto: str, pg_url: str, arn: str, n: int) -> None:
    print(f"(B) fast stream (FakeStreams over HTTP in its own process), {n:,} records, 1 shard")
    with fast_stream(arn, n, 1) as fast:
        reset(pg_url)
        env = {"AWS_ENDPOINT_URL_DYNAMODB": moto, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": fast}
        bare = []
        for _ in range(2):
            started = time.perf_counter()
            assert bare_loop(fast, arn) == n
            bare.append(time.perf_counter() - started)
        a = min(bare)
        wall, run = tail_run(pg_url, env)
        assert applied(pg_url) == n, applied(pg_url)
    print(f"  (a) bare boto3 GetRecords loop   {a:7.2f} s  {n / a:>9,.0f} records/s")
    print(f"  (b) ddbrepl tail --until-idle    {wall:7.2f} s  {n / wall:>9,.0f} records/s  (run {run:.2f} s, "
          f"{n / run:,.0f} records/s)")
    print(f"  b/a = {wall / a:.2f} wall, {run / a:.2f} run   (target ≤ 0.6)")



def part_c(moto: str, pg_url: str, arn: str, n: int, worker_counts: list[int]) -> None:
    print(f"(C) fast stream, {n:,} records over 8 shards (one split), workers sharing it through leases")
    with fast_stream(arn, n, 7) as fast:
        env = {"AWS_ENDPOINT_URL_DYNAMODB": moto, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": fast}
        for workers in worker_counts:
            reset(pg_url)
            wall, run = tail_run(pg_url, env, workers)
            assert applied(pg_url) == n, applied(pg_url)
            print(f"  {workers} worker(s)  {wall:7.2f} s wall  {n / wall:>9,.0f} records/s   (slowest run "
                  f"{run:.2f} s: {n / run:,.0f} records/s)")


if __name__ == "__main__":
    main()
