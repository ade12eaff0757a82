"""`ddbrepl verify --table T [--repair] [--sample N]`: prove PostgreSQL holds what DynamoDB holds, row by row.

DynamoDB is scanned in parallel segments and every item converted with the table's mappings, exactly as a
backfill would. Converted rows go to PostgreSQL in chunks and PostgreSQL compares each chunk with the target,
child tables included (:mod:`ddbrepl.runners.verify_check`): only the keys and column names of drifted rows travel
back. That is stricter than comparing row hashes (no collisions, no text-rendering pitfalls such as ``1.5`` vs
``1.50``) and just as cheap on the wire. The keys seen are kept in a second temporary table, so once the scan ends
one anti-join finds the *extra* rows (in PostgreSQL, not in DynamoDB). Python memory stays at a chunk per mapping
plus the pages in flight, whatever the table's size; only the first ``REPORT_KEYS`` keys per kind are kept.

``--repair`` writes the drift through the sink: missing and different rows as upserts with origin "repair" (no
guard: the scanned item is the truth), extra rows as deletes.

A scan is not a snapshot, and `tail` (or the Lambda function) may be writing while verify runs. Rows whose
``_ddb_synced_at`` is later than verify's start were written by the stream meanwhile: they are counted as *in
flux*, neither drift nor repaired (the stream is at least as new as the scan). A row about to be rewritten or
deleted is locked first (``FOR UPDATE``) and re-checked to predate verify, so a stream change committed meanwhile
wins and one arriving later waits for the repair, then applies on top. What remains is a window of milliseconds
for a *missing* row that the stream inserts between the check and the repair's commit. ``--sample N`` compares
about N items from random segments, then samples about N rows of each target and looks their items up
(:mod:`ddbrepl.runners.verify_sample`) to find extra rows.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ddbrepl.records import Page, RawChange
from ddbrepl.runners.common import aws_config, one_table, open_state
from ddbrepl.runners.verify_check import Checker
from ddbrepl.runners.verify_report import MappingReport, VerifyReport
from ddbrepl.runners.verify_sample import check_sampled_rows
from ddbrepl.settings import Settings
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.scan import describe_table, scan_segment

log = logging.getLogger(__name__)
SAMPLE_SEGMENTS = 64
PAGE_ITEMS = 1000
"""Scan ``Limit``: a 1 MB page of small items is thousands of items and tens of MB as Python objects; with
segments + 2 pages in memory at once, capping pages keeps verify's memory small (same read capacity, more calls)."""


def _parallel_pages(client: Any, table: str, segments: int) -> Iterator[Page]:
    """Every page of a parallel scan, read by ``segments`` threads; at most segments + 2 pages in memory."""
    q: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Page | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read(segment: int) -> None:
        try:
            for page in scan_segment(client, table, segment, segments, None, limit=PAGE_ITEMS):
                if not put(page):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
            return
        put(None)

    with ThreadPoolExecutor(segments, thread_name_prefix="verify-scan") as pool:
        for s in range(segments):
            pool.submit(read, s)
        done = 0
        try:
            while done < segments:
                item = q.get()
                if item is None:
                    done += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()


def _sample_pages(client: Any, table: str, wanted: int) -> Iterator[Page]:
    """Pages of randomly chosen segments (of SAMPLE_SEGMENTS) until ``wanted`` items were yielded."""
    order = list(range(SAMPLE_SEGMENTS))
    random.shuffle(order)
    got = 0
    for segment in order:
        for page in scan_segment(client, table, segment, SAMPLE_SEGMENTS, None, limit=PAGE_ITEMS):
            items = list(page.items)[: wanted - got]
            got += len(items)
            yield Page(page.segment, items, page.resume_from)
            if got >= wanted:
                return


def verify(settings: Settings, table: str, *, repair: bool = False, sample: int | None = None,
           segments: int = 4) -> VerifyReport:
    """Compare ``table`` in DynamoDB with every mapping's target; with ``repair``, write the drift back."""
    plan = one_table(settings, table)
    client = dynamodb_client(aws_config(settings))
    info = describe_table(client, table)
    report = VerifyReport(table, sampled=sample is not None, repair=repair)
    started = time.monotonic()
    with open_state(settings) as conn:
        since_row = conn.execute("SELECT now()").fetchone()
        assert since_row is not None
        since: datetime = since_row[0]
        checkers = []
        for i, conv in enumerate(plan.converters):
            m = conv.mapping
            mr = MappingReport(m.name, str(m.target), tuple(c.name for c in m.key_columns))
            report.mappings.append(mr)
            checker = Checker(conn, i, conv, mr, repair, since)
            checker.create_tables()
            checkers.append(checker)
        pages = _sample_pages(client, table, sample) if sample else _parallel_pages(client, table, segments)
        keys = info.key_names
        for page in pages:
            for item in page.items:
                change = RawChange("INSERT", {k: item[k] for k in keys if k in item}, item)
                for checker in checkers:
                    checker.take(change)
            report.items += len(page.items)
        for checker in checkers:
            if sample:
                if checker.pending or checker.seen_only:
                    checker.flush()
                check_sampled_rows(checker, client, info, sample)
            else:
                checker.extras()
    report.seconds = time.monotonic() - started
    log.info("verify of %s: %d items, drift %s", table, report.items,
             {m.mapping: m.drift for m in report.mappings})
    return report
