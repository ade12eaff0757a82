"""`ddbrepl verify` speed and memory against a bare parallel scan of the same table, measured in the same run.

    .venv/bin/python -m bench.verify --items 20000 [--segments 4] [--drift 100]

Seeds the Mixed table on a moto server (own process), backfills it, then times:
  (a) bare scan: a plain boto3 parallel scan, items discarded;
  (c) `ddbrepl verify` in a child process (peak RSS of that process alone), on a table in sync;
  (d) `ddbrepl verify --repair` after ``--drift`` rows were changed in PostgreSQL behind ddbrepl's back, and a
      final `verify` that must find nothing.
moto's rendering dominates (see bench/backfill.py), so the ratio c/a is the figure that matters: the comparison
itself (COPY of converted chunks, a join in PostgreSQL) should add little to reading the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import psycopg

from bench.apply import database
from bench.backfill import MAPPINGS, TABLE, bare_scan, seed
from bench.read import moto_server

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would report the
# parent's high-water mark (here: the seeding and the bare scan), not its own.
_WRAPPER = (
    "import sys\n"
    "from ddbrepl.cli import main\n"
    "sys.argv = ['ddbrepl', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "    print('peak_rss_kib', hwm[0], file=sys.stderr)\n"
)


def ddbrepl(*args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(seconds, peak RSS MiB of that process, the completed process)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("peak_rss_kib")]
    return seconds, int(peak[-1]) / 1024 if peak else float("nan"), proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--drift", type=int, default=100)
    args = parser.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    with moto_server() as url, database(durable=False) as pg_url:
        seed(url, args.items)
        base = ["--endpoint-url", url, "--database-url", pg_url, "--mappings", MAPPINGS]
        for step in (["init-schema"], ["backfill", "--table", TABLE, "--no-progress"]):
            _, _, proc = ddbrepl(*base, *step)
            assert proc.returncode == 0, proc.stderr
        started = time.perf_counter()
        assert bare_scan(url, args.segments) == args.items
        a = time.perf_counter() - started
        verify = [*base, "verify", "--table", TABLE, "--segments", str(args.segments), "--output", "json"]
        c, rss, proc = ddbrepl(*verify)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE mixed SET qty = coalesce(qty, 0) + 1 WHERE ctid IN "
                         "(SELECT ctid FROM mixed ORDER BY random() LIMIT %s)", (args.drift,))
        d, rss_d, proc = ddbrepl(*verify, "--repair")
        report = json.loads(proc.stdout)["mappings"][0]
        assert report["different"] == args.drift and report["repaired"]["upserts"] == args.drift, report
        _, _, proc = ddbrepl(*verify)
        assert proc.returncode == 0, proc.stdout
        n = args.items
        print(f"(a) bare boto3 parallel scan   {a:8.2f} s  {n / a:>9,.0f} items/s")
        print(f"(c) ddbrepl verify (in sync)   {c:8.2f} s  {n / c:>9,.0f} items/s   peak RSS {rss:,.0f} MiB")
        print(f"(d) verify --repair ({args.drift} drift) {d:6.2f} s  {n / d:>9,.0f} items/s   "
              f"peak RSS {rss_d:,.0f} MiB")
        print(f"c/a = {c / a:.2f}")


if __name__ == "__main__":
    main()
