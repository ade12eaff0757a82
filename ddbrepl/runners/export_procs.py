"""Load an export's files in several processes: each takes whole files, with its own S3 client and connections.

Conversion is CPU-bound Python (the codec decodes every attribute for a ``$item`` jsonb column, ION parsing more
so), and threads share one GIL; processes do not. Nothing but small results crosses a process boundary: each
child claims files through the same advisory locks as the threads, reads, converts and commits them itself, and
sends back counts, per-chunk progress numbers and failed files (never a RawChange: pickling them costs about five
times their parsing). Children are spawned (no fork of a process holding connections and threads).

A child dies with its parent: a child that outlived a ``kill -9`` of the parent would keep loading and keep its
files claimed (session advisory locks), so the re-run would wait on it. On Linux the kernel sends the child
SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); elsewhere a watchdog thread notices the parent is gone
within a second and exits.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ddbrepl import logs
from ddbrepl.errors import Fatal
from ddbrepl.records import ApplyStats
from ddbrepl.runners.backfill_common import run_workers, tuned_gc
from ddbrepl.runners.common import one_table
from ddbrepl.runners.export_files import FileLoader
from ddbrepl.settings import Settings
from ddbrepl.sources.s3export import ExportInfo

log = logging.getLogger(__name__)
_progress: Any = None
"""In a child process: the queue its loader reports committed changes to (set by the pool's initializer)."""


@dataclass(frozen=True, slots=True)
class ChildResult:
    finished: int
    stats: ApplyStats
    failed: dict[int, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent dies."""


def _init(progress: Any, parent: int, logging_setup: tuple[int, str] | None) -> None:
    global _progress
    _progress = progress
    die_with_parent(parent)
    if logging_setup is not None:  # a spawned child starts with logging unconfigured: log as the parent does
        logs.configure(*logging_setup)


def die_with_parent(parent: int) -> None:
    """End this process as soon as process ``parent`` (its parent) is gone."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _report(n: int) -> None:
    _progress.put(n)


def load_in_child(settings: Settings, table: str, info: ExportInfo, chunk_size: int, threads: int) -> ChildResult:
    """One child process's share: load files with ``threads`` workers until none is left to claim."""
    plan = one_table(settings, table)
    with tuned_gc():
        loader = FileLoader(settings, plan, info, _report, chunk_size=chunk_size)
        finished, errors = run_workers(threads, loader.run_worker, name="export")
    return ChildResult(finished, loader.stats, dict(loader.failed), tuple(str(e) for e in errors))


@dataclass
class Outcome:
    """Everything the processes did, merged."""

    finished: int = 0
    stats: ApplyStats = field(default_factory=ApplyStats)
    failed: dict[int, str] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


def run_processes(settings: Settings, table: str, info: ExportInfo, local: FileLoader, *, processes: int,
                  threads: int, chunk_size: int, advance: Any) -> Outcome:
    """Run ``processes - 1`` children beside this process's own ``local`` loader, and merge what they did."""
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Queue()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set() or not progress.empty():
            try:
                advance(progress.get(timeout=0.2))
            except Exception:  # queue.Empty: nothing yet
                continue

    drainer = threading.Thread(target=drain, name="export-progress", daemon=True)
    drainer.start()
    out = Outcome()
    try:
        with ProcessPoolExecutor(processes - 1, mp_context=ctx, initializer=_init,
                                 initargs=(progress, os.getpid(), logs.configured())) as pool:
            children: list[Future[ChildResult]] = [
                pool.submit(load_in_child, settings, table, info, chunk_size, threads) for _ in range(processes - 1)]
            out.finished, out.errors = run_workers(threads, local.run_worker, name="export")
            out.stats, out.failed = local.stats, dict(local.failed)
            for child in children:
                exc = child.exception()
                if exc is not None:
                    out.errors.append(exc)
                    continue
                result = child.result()
                out.finished += result.finished
                out.stats += result.stats
                out.failed |= result.failed
                out.errors += [Fatal(f"an export loader process failed: {e}") for e in result.errors]
    finally:
        stop.set()
        drainer.join()
    return out
