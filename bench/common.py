"""Pieces shared by the end-to-end benchmarks: the COPY floor and a measured `ddbrepl` child process."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from ddbrepl.codec.rows import compile_mapping
from ddbrepl.records import RawChange, Upsert
from tests.helpers import mixed_mapping

MEASURED = """import resource, sys
from ddbrepl.cli import main
sys.argv = ["ddbrepl", *sys.argv[1:]]
try:
    main()
finally:
    own = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak-rss-kib: {max(own, kids)}", file=sys.stderr)
"""
"""Runs the CLI and reports its own peak RSS (or its largest loader process's). VmHWM, not ru_maxrss: Linux
carries a process's maxrss across fork and exec, so the child would report this bench's size at the fork."""


def copy_floor(pg_url: str, items: list[dict[str, Any]]) -> float:
    """Seconds to COPY the already-converted rows (mixed mapping) into an empty table shaped like the target."""
    mapping = mixed_mapping()
    conv = compile_mapping(mapping)
    rows = []
    for image in items:
        op = conv(RawChange("INSERT", {k: image[k] for k in mapping.source_key}, image))
        assert isinstance(op, Upsert)
        rows.append(op.values)
    cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in mapping.columns)
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("CREATE TABLE floor AS SELECT {} FROM {} WITH NO DATA").format(
            cols, sql.Identifier(mapping.target.schema, mapping.target.table)))
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY floor ({}) FROM STDIN").format(cols)) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def measured_ddbrepl(base: Sequence[str], args: Sequence[str]) -> tuple[float, float, float, str]:
    """Run ``ddbrepl *base *args`` in a child process: (seconds, CPU seconds, peak RSS in MiB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURED, *base, *args], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rss_kib = int(proc.stderr.split("peak-rss-kib:")[1].split()[0])
    return seconds, cpu, rss_kib / 1024, proc.stdout
