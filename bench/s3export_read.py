"""Read + parse speed of one gzipped export data file from S3 (a moto server in its own process).

    .venv/bin/python -m bench.s3export_read --items 100000 [--endpoint http://…] [--repeat 3]

Prints, per format (DYNAMODB_JSON, ION), items/s of each stage on its own and of the whole of ``iter_file``:
GetObject bytes only; + gunzip and line split; + per-line parse (orjson / amazon-ion); + RawChange (the source as
the runner sees it). The stage that eats the time says whether parsing is the bottleneck and whether more
processes would help.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
import orjson

from bench.read import moto_server
from ddbrepl.sources import ion, s3export
from ddbrepl.sources.export_read import READ_BYTES, iter_lines
from tests.fakes.exports import mixed_items, write_export

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "bench"
DEFAULT_GC = gc.get_threshold()
TUNED_GC = (100_000, 50, 100)
"""Parsing allocates ~10 containers an item that live until the chunk is applied: with the default threshold
(700) the collector runs every ~70 items and its older generations re-walk every live chunk and botocore's
models, which costs more CPU than the parsing itself."""


def timed(label: str, count: int, run: Callable[[], int], repeat: int) -> float:
    """Best of ``repeat`` runs, in CPU seconds of this process (the S3 server is another process; other work on
    the machine does not inflate it), with the wall time of that run beside it."""
    best, wall = float("inf"), 0.0
    for _ in range(repeat):
        cpu, started = time.process_time(), time.perf_counter()
        got = run()
        if time.process_time() - cpu < best:
            best, wall = time.process_time() - cpu, time.perf_counter() - started
        assert got == count, (label, got, count)
    print(f"  {label:<46} cpu {best:6.3f} s {count / best:>10,.0f} items/s   (wall {wall:6.3f} s)")
    return best


def blocks(s3: S3Client, key: str) -> Iterator[bytes]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    while block := body.read(READ_BYTES):
        yield block


def bench_format(s3: S3Client, info: s3export.ExportInfo, fmt: str, n: int, repeat: int) -> None:
    (datafile,) = info.files
    size = s3.head_object(Bucket=BUCKET, Key=datafile.key)["ContentLength"]
    print(f"{fmt}: {n:,} items, one file of {size / 1e6:.1f} MB gzipped")

    def download() -> int:
        for _ in blocks(s3, datafile.key):
            pass
        return n

    def lines() -> int:
        return sum(len(ls) for _, ls in iter_lines(blocks(s3, datafile.key), datafile.key))

    def parse() -> int:
        total = 0
        for _, ls in iter_lines(blocks(s3, datafile.key), datafile.key):
            if fmt == "ION":
                total += len(ion.parse(b"\n".join(ls)))
            else:
                total += sum(1 for line in ls if orjson.loads(line))
        return total

    def full() -> int:
        return sum(len(c) for c in s3export.iter_file(s3, info, datafile, ("pk", "sk")))

    def full_md5() -> int:
        return sum(len(c) for c in s3export.iter_file(s3, info, datafile, ("pk", "sk"), verify_md5=True))

    t_get = timed("GetObject only", n, download, repeat)
    t_lines = timed("+ gunzip + split lines", n, lines, repeat)
    timed("+ parse lines (" + ("amazon-ion C ext" if fmt == "ION" else "orjson") + ")", n, parse, repeat)
    t_full = timed(
        "iter_file (+ Ion→DDB JSON, keys, RawChange)" if fmt == "ION" else "iter_file (+ keys, RawChange)",
        n,
        full,
        repeat,
    )
    timed("iter_file, verify_md5=True", n, full_md5, repeat)
    print(
        f"  share of iter_file: S3 {t_get / t_full:.0%}, gunzip+split {(t_lines - t_get) / t_full:.0%}, "
        f"parse+convert {(t_full - t_lines) / t_full:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--endpoint", help="an S3 endpoint (default: start a moto server)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="DYNAMODB_JSON,ION")
    parser.add_argument(
        "--gc",
        choices=["default", "tuned", "off"],
        default="default",
        help="garbage collector during the runs: Python's defaults; tuned (gc.freeze() after setup and a "
        f"first-generation threshold of {TUNED_GC[0]:,}); or disabled",
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with moto_server() if args.endpoint is None else _given(args.endpoint) as url:
        s3: S3Client = boto3.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket=BUCKET)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, gc {args.gc}")
        for fmt in args.formats.split(","):
            layout = write_export(s3, BUCKET, f"bench-{fmt.lower()}", mixed_items(args.items), files=1, fmt=fmt)
            gc.collect()
            if args.gc == "tuned":
                gc.freeze()
                gc.set_threshold(*TUNED_GC)
            elif args.gc == "off":
                gc.disable()
            bench_format(s3, s3export.locate_export(s3, layout.url), fmt, args.items, args.repeat)
            gc.enable()
            gc.unfreeze()
            gc.set_threshold(*DEFAULT_GC)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
