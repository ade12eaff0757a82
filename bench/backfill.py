"""Backfill speed and memory against a bare parallel scan and a bare COPY, all measured in the same run.

    .venv/bin/python -m bench.backfill --items 50000 [--segments 4]

moto renders every item slowly (about 2.6 ms), so absolute figures mean little; the ratios are the point:
  (a) bare scan: a plain boto3 parallel scan of the table (threads, one client), items discarded;
  (b) COPY floor: the same items already converted by the codec, COPYed into an empty copy of the target table;
  (c) ddbrepl: `ddbrepl backfill` as a child process (init-schema done beforehand), peak RSS measured.
Prints items/s of each and the ratios c/a (target ≤ 1.3; below 1.0 is possible thanks to the fast response path)
and c/b. Run it with 50 000 and 500 000 items to see that the peak RSS stays flat.
moto runs in its own process so that it does not share this process's GIL.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import psycopg
from boto3.dynamodb.types import TypeSerializer

from bench.apply import database
from bench.common import copy_floor
from bench.read import moto_server
from bench.synthetic_table import item as synthetic_item
from bench.synthetic_table import synthetic_server, templates
from tests.helpers import ROOT, create_table, mixed_item

TABLE = "Mixed"
MAPPINGS = str(ROOT / "tests" / "mappings" / "mixed")


def seed(url: str, items: int) -> None:
    create_table(url, TABLE, [("pk", "S"), ("sk", "N")], stream=None)
    serializer = TypeSerializer()

    def write(start: int) -> None:
        client = boto3.client("dynamodb", endpoint_url=url)
        rng = random.Random(start)
        for lo in range(start, min(start + 5000, items), 25):
            batch = [
                {"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in mixed_item(i, rng).items()}}}
                for i in range(lo, min(lo + 25, items, start + 5000))
            ]
            request: dict[str, Any] = {TABLE: batch}
            while request:
                request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(0, items, 5000)))


def bare_scan(url: str, segments: int, keep: list[dict[str, Any]] | None = None) -> int:
    client = boto3.client("dynamodb", endpoint_url=url)

    def one(segment: int) -> int:
        count, params = 0, {"TableName": TABLE, "Segment": segment, "TotalSegments": segments}
        while True:
            page = client.scan(**params)
            count += len(page["Items"])
            if keep is not None:
                keep.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return count
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(one, range(segments)))


def run_backfill(url: str, pg_url: str, segments: int) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `ddbrepl backfill` in a child process."""
    base = [sys.executable, "-m", "ddbrepl", "--endpoint-url", url, "--database-url", pg_url, "--mappings", MAPPINGS]
    subprocess.run([*base, "init-schema"], check=True, capture_output=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [*base, "backfill", "--table", TABLE, "--segments", str(segments), "--no-progress"],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    print("  " + proc.stdout.strip())
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--synthetic", action="store_true",
                        help="scan a synthetic table served by bench/synthetic_table.py (a fake, but fast: for "
                        "sizes moto cannot serve) instead of moto; the COPY floor then uses the first 50 000 items")
    args = parser.parse_args()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    server = synthetic_server(args.items) if args.synthetic else moto_server()
    with server as url, database(durable=False) as pg_url:
        started = time.perf_counter()
        if not args.synthetic:
            seed(url, args.items)
            print(f"seeded {args.items:,} items in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        items: list[dict[str, Any]] = []
        scanned = bare_scan(url, args.segments, keep=None if args.synthetic else items)
        a = time.perf_counter() - started
        assert scanned == args.items, scanned
        c, rss = run_backfill(url, pg_url, args.segments)
        if args.synthetic:
            pool = templates()
            sample = [synthetic_item(pool, i) for i in range(min(args.items, 50_000))]
            b = copy_floor(pg_url, sample) * args.items / len(sample)
        else:
            b = copy_floor(pg_url, items)
        with psycopg.connect(pg_url) as conn:
            loaded = conn.execute("SELECT count(*) FROM mixed").fetchone()
        assert loaded == (args.items,), loaded
        n = args.items
        print(f"(a) bare boto3 parallel scan  {a:8.2f} s  {n / a:>10,.0f} items/s")
        print(f"(b) COPY of converted rows    {b:8.2f} s  {n / b:>10,.0f} items/s")
        print(f"(c) ddbrepl backfill          {c:8.2f} s  {n / c:>10,.0f} items/s   peak RSS {rss:,.0f} MiB")
        print(f"c/a = {c / a:.2f}   (target ≤ 1.3)")
        reader = "the synthetic server" if args.synthetic else "moto's rendering"
        print(f"c/b = {c / b:.1f}   (reading from {reader} dominates; b is {100 * b / a:.1f} % of a)")


if __name__ == "__main__":
    main()
