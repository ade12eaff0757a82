"""`tail` on what moto cannot produce: shard splits, expired iterators, throttling, trimming, and several workers
sharing a stream through fenced leases (issue 8).

DynamoDB itself (DescribeTable) is moto; the stream is FakeStreams served over HTTP (tests/fakes/streams_server.py),
so the code under test — boto3 client, fast path, retries — is the production code. The single-worker tests run
`tail()` in a thread of the test process; the lease test runs three real `ddbrepl tail` processes, so kill -9,
SIGSTOP and SIGCONT are real.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ddbrepl.errors import DataLoss
from ddbrepl.mapping.check import load_mappings
from ddbrepl.runners.init_schema import init_schema
from ddbrepl.runners.tail import Summary, tail
from ddbrepl.settings import Settings
from ddbrepl.state import leases
from tests.fakes.streams import FakeStreams
from tests.fakes.streams_server import StreamsServer
from tests.helpers import ROOT, SERIALIZER, create_table, ddb, differences, expected_table

EMPLOYEES = ROOT / "mappings" / "employees.yaml"


@pytest.fixture
def fake(aws_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStreams]:
    """Employees on moto, its stream replaced by a FakeStreams with the same ARN, the schema initialised."""
    create_table(aws_url, "Employees", [("Id", "N")], stream="NEW_AND_OLD_IMAGES")
    arn = ddb(aws_url).describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
    stream = FakeStreams(arn, table="Employees", epoch_times=True)
    with StreamsServer(stream) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", aws_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", server.url)
        init_schema(settings(pg_url))
        yield stream


def settings(pg_url: str) -> Settings:
    return Settings(mappings=(EMPLOYEES,), database_url=pg_url)


class Source:
    """What the table holds, as the fake's writes say: the expected PostgreSQL content."""

    def __init__(self, stream: FakeStreams) -> None:
        self.stream = stream
        self.items: dict[int, dict[str, Any]] = {}
        self.written = 0

    def put(self, i: int, name: str, dept: str = "D") -> None:
        item = {"Id": Decimal(i), "empName": name, "empDepartment": dept}
        image = {k: SERIALIZER.serialize(v) for k, v in item.items()}
        self.stream.put("MODIFY" if i in self.items else "INSERT", {"Id": image["Id"]}, new=image)
        self.items[i] = item
        self.written += 1

    def delete(self, i: int) -> None:
        self.stream.put("REMOVE", {"Id": {"N": str(i)}})
        self.items.pop(i, None)
        self.written += 1


def records(pg: psycopg.Connection[Any]) -> int:
    row = pg.execute("SELECT coalesce(sum(records), 0) FROM ddbrepl.checkpoints").fetchone()
    assert row is not None
    return int(row[0])


def assert_exact(pg: psycopg.Connection[Any], source: Source) -> None:
    (mapping,) = load_mappings([EMPLOYEES])
    expected_table(pg, mapping, source.items.values())
    assert differences(pg, mapping) == (0, 0)
    assert records(pg) == source.written  # every stream record taken exactly once


def run_until_idle(pg_url: str) -> Summary:
    return tail(settings(pg_url), until_idle=True, progress=False, lease_seconds=5)


def test_split_parent_before_children_and_the_childs_value_wins(fake: FakeStreams, pg_url: str,
                                                               pg: psycopg.Connection[Any]) -> None:
    source = Source(fake)
    root = fake.add_shard()
    for i in range(50):
        source.put(i, f"v1-{i}")
    left, right = fake.split(root)
    for i in range(50):
        source.put(i, f"v2-{i}")  # the same keys again, now in the children
    for i in range(0, 50, 5):
        source.delete(i)
    summary = run_until_idle(pg_url)
    assert summary.records == source.written == 110
    assert_exact(pg, source)
    assert pg.execute('SELECT "Name" FROM "Employees" WHERE "Id" = 1').fetchone() == ("v2-1",)
    finished = dict(pg.execute("SELECT shard_id, finished FROM ddbrepl.checkpoints").fetchall())
    assert finished == {root: True, left: False, right: False}


def test_expired_iterators_and_throttling_while_tailing(fake: FakeStreams, pg_url: str,
                                                        pg: psycopg.Connection[Any]) -> None:
    source = Source(fake)
    fake.add_shard()
    fake.add_shard()
    stop = threading.Event()
    result: list[Summary | BaseException] = []

    def worker() -> None:
        try:
            result.append(tail(settings(pg_url), progress=False, stop=stop, lease_seconds=5))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for round_ in range(6):
            for i in range(40):
                source.put(i, f"r{round_}-{i}")
            if round_ % 2 == 0:
                fake.expire_iterators()  # every iterator in the readers' hands is now expired
            else:
                fake.throttle(2)  # absorbed by botocore's retries, then reading goes on
            time.sleep(0.4)
        deadline = time.monotonic() + 30
        while records(pg) < source.written and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert isinstance(result[0], Summary), result
    assert_exact(pg, source)
    # iterators were renewed from the checkpoints: more GetShardIterator calls than the two first ones
    assert fake.calls["get_shard_iterator"] > 2


def test_trimmed_records_past_the_checkpoint_stop_with_data_loss(fake: FakeStreams, pg_url: str,
                                                                 pg: psycopg.Connection[Any]) -> None:
    source = Source(fake)
    shard = fake.add_shard()
    source.put(1, "a")
    run_until_idle(pg_url)
    source.put(2, "b")
    last = fake.put("INSERT", {"Id": {"N": "3"}}, new={"Id": {"N": "3"}})
    fake.trim(shard, through=last)  # 2 and 3 were never applied, and are gone
    with pytest.raises(DataLoss, match="trimmed") as info:
        run_until_idle(pg_url)
    assert "backfill" in (info.value.hint or "")
    assert records(pg) == 1


def lease_owners(pg: psycopg.Connection[Any]) -> Counter[str]:
    rows = pg.execute("SELECT owner FROM ddbrepl.leases l JOIN ddbrepl.checkpoints c USING (stream_arn, shard_id) "
                      "WHERE owner IS NOT NULL AND expires_at > now() AND NOT c.finished").fetchall()
    return Counter(r[0] for r in rows)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_three_workers_share_eight_shards_survive_kill_and_pause(fake: FakeStreams, pg_url: str,
                                                                 pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    source = Source(fake)
    roots = [fake.add_shard() for _ in range(6)]
    for i in range(300):
        source.put(i, f"a-{i}")
    fake.split(roots[0])  # 8 shards: a closed parent, its 2 children, 5 open roots
    lease = 8
    args = ["--database-url", pg_url, "--mappings", str(EMPLOYEES), "-v", "tail", "--no-progress",
            "--lease-seconds", str(lease)]
    logs = {w: tmp_path / f"{w}.log" for w in ("w1", "w2", "w3")}
    files = {w: path.open("w") for w, path in logs.items()}
    procs = {w: subprocess.Popen([sys.executable, "-m", "ddbrepl", *args, "--worker-id", w], text=True,
                                 stdout=subprocess.DEVNULL, stderr=files[w]) for w in logs}
    writing = threading.Event()
    writing.set()

    def writer() -> None:
        n = 0
        while writing.is_set():
            source.put(n % 400, f"b-{n}")
            n += 1
            if n % 50 == 0:
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        # Spread: the parent finishes, then 7 open shards over 3 workers: 3/2/2.
        wait_for(lambda: sorted(lease_owners(pg).values()) == [2, 2, 3], 30, "an even spread")

        procs["w1"].send_signal(signal.SIGKILL)
        procs["w1"].wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(lambda: "w1" not in lease_owners(pg) and sum(lease_owners(pg).values()) == 7, lease + 10,
                 "w1's shards taken over")
        assert time.monotonic() - killed_at < lease - 3  # w1's session ended: no need to wait for expiry

        procs["w2"].send_signal(signal.SIGSTOP)
        wait_for(lambda: set(lease_owners(pg)) == {"w3"} and sum(lease_owners(pg).values()) == 7, lease + 10,
                 "w3 holding every shard while w2 is paused")
        procs["w2"].send_signal(signal.SIGCONT)
        wait_for(lambda: sorted(lease_owners(pg).values()) == [3, 4], 30, "w2 back with its share")
        writing.clear()
        thread.join()
        wait_for(lambda: records(pg) == source.written, 60, "every record applied")
        for w in ("w2", "w3"):
            procs[w].send_signal(signal.SIGTERM)
            assert procs[w].wait(timeout=30) == 0, logs[w].read_text()
    finally:
        writing.clear()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
        for f in files.values():
            f.close()
    # w2 came back with stale leases: it learnt it had lost them (fenced commit or lease round) and let go
    w2 = logs["w2"].read_text()
    assert "no longer held by w2" in w2 or "moved to another worker; w2 drops it" in w2, w2[-3000:]
    assert_exact(pg, source)


def test_ttl_expiry_follows_the_mapping_and_bad_records_become_dead_letters(
        fake: FakeStreams, pg_url: str, pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    mapping = tmp_path / "employees.yaml"
    mapping.write_text(EMPLOYEES.read_text() + "ttl_delete: ignore\n")
    source = Source(fake)
    fake.add_shard()
    source.put(1, "kept", "D1")
    source.put(2, "deleted", "D2")
    source.put(3, "bad", "Engineering")  # 11 characters for a varchar(10) without on_overflow: a dead letter
    fake.put("REMOVE", {"Id": {"N": "1"}}, ttl=True)  # TTL expiry: ignored by this mapping
    fake.put("REMOVE", {"Id": {"N": "2"}})  # a user's delete
    summary = tail(Settings(mappings=(mapping,), database_url=pg_url), until_idle=True, progress=False)
    assert summary.records == 5 and summary.tallies["Employees"].stats.rejected == 1
    assert pg.execute('SELECT "Id", "Name" FROM "Employees"').fetchall() == [(1, "kept")]
    dead = pg.execute("SELECT origin, column_name, sequence IS NOT NULL FROM ddbrepl.dead_letters").fetchall()
    assert dead == [("stream", "Department", True)]


def test_until_idle_waits_for_the_lease_of_a_worker_that_may_be_alive(fake: FakeStreams, pg_url: str,
                                                                      pg: psycopg.Connection[Any]) -> None:
    source = Source(fake)
    fake.add_shard()
    for i in range(20):
        source.put(i, f"v{i}")
    run_until_idle(pg_url)
    for i in range(20):
        source.put(i, f"w{i}")
    # A worker killed a moment ago holds the lease for 30 more seconds; its session is gone: taken at once.
    pg.execute("UPDATE ddbrepl.leases SET owner = 'ghost', epoch = epoch + 1, expires_at = now() + interval '30 s'")
    started = time.monotonic()
    assert run_until_idle(pg_url).records == 20 and time.monotonic() - started < 10
    for i in range(20):
        source.put(i, f"x{i}")
    # Its session still open (a lingering connection, or a pause): the lease holds until it expires.
    assert leases.announce(pg, "ghost")
    pg.execute("UPDATE ddbrepl.leases SET owner = 'ghost', epoch = epoch + 1, expires_at = now() + interval '3 s'")
    started = time.monotonic()
    summary = run_until_idle(pg_url)
    assert summary.records == 20 and time.monotonic() - started >= 2.5
    assert_exact(pg, source)
