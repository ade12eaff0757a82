"""`ddbrepl demo`: the Employees story end to end on a local DynamoDB (moto) and a local PostgreSQL (embedded).

Creates the Employees table with a NEW_IMAGE stream, loads a few items, runs init-schema and backfill, then follows
the stream with `tail` (in a background thread, as a daemon would) while it inserts, updates and deletes the AWS
blog's Akua, printing the PostgreSQL table after each step and how long the change took to arrive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import boto3

from ddbrepl import local
from ddbrepl.db import connect
from ddbrepl.runners.backfill import backfill
from ddbrepl.runners.init_schema import init_schema
from ddbrepl.runners.tail import tail
from ddbrepl.settings import Settings

log = logging.getLogger(__name__)
Echo = Callable[[str], None]
SEED = [
    {"Id": {"N": "1001"}, "empName": {"S": "Ama"}, "empDepartment": {"S": "Sales"}},
    {"Id": {"N": "1002"}, "empName": {"S": "Kwame"}, "empDepartment": {"S": "Ops"}},
    {"Id": {"N": "1003"}, "empName": {"S": "Esi Mensah-Bonsu of the Finance team"}},
]
SELECT = 'SELECT "Id", "Name", "Department", _ddb_seq IS NULL AS from_backfill FROM "Employees" ORDER BY "Id"'


def _mapping_dir(workdir: Path) -> Path:
    """The packaged Employees mapping, copied next to the demo's data (it works from any directory)."""
    target = workdir / "mappings"
    target.mkdir()
    text = resources.files("ddbrepl").joinpath("examples/employees.yaml").read_text(encoding="utf-8")
    (target / "employees.yaml").write_text(text, encoding="utf-8")
    return target


def _rows(url: str) -> list[tuple[Any, ...]]:
    with connect(url, autocommit=True) as conn:
        return list(conn.execute(SELECT).fetchall())


def _show(echo: Echo, rows: list[tuple[Any, ...]]) -> None:
    echo('   "Id" | "Name"               | "Department" | written by')
    echo("  ------+----------------------+--------------+-----------")
    for id_, name, dept, from_backfill in rows:
        echo(f"  {id_:>5} | {name or '':<20} | {dept or '':<12} | {'backfill' if from_backfill else 'stream'}")
    if not rows:
        echo("  (no rows)")


def _wait_for(url: str, want: Callable[[list[tuple[Any, ...]]], bool],
              timeout: float = 20.0) -> tuple[list[Any], float]:
    started = time.monotonic()
    while True:
        rows = _rows(url)
        if want(rows) or time.monotonic() - started > timeout:
            return rows, time.monotonic() - started
        time.sleep(0.05)


@contextmanager
def _tailing(settings: Settings) -> Iterator[threading.Thread]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            tail(settings, ("Employees",), progress=False, stop=stop, lease_seconds=10.0)
        except BaseException as exc:  # shown by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="demo-tail", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(30)
    if errors:
        raise errors[0]


def demo(echo: Echo, *, keep: bool = False, wait_forever: Callable[[], None] | None = None) -> None:
    """Run the story; with ``keep``, leave both services running and wait (Ctrl-C stops)."""
    with local.services() as svc:
        mappings = _mapping_dir(svc.workdir)
        settings = Settings(mappings=(mappings,), database_url=svc.database_url, endpoint_url=svc.endpoint_url,
                            region="us-east-1")
        echo(f"local DynamoDB (moto): {svc.endpoint_url}")
        echo(f"local PostgreSQL:      {svc.database_url}\n")
        ddb = boto3.client("dynamodb", endpoint_url=svc.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="demo", aws_secret_access_key="demo")
        ddb.create_table(TableName="Employees", KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
                         BillingMode="PAY_PER_REQUEST",
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        for item in SEED:
            ddb.put_item(TableName="Employees", Item=item)
        echo("1. DynamoDB table Employees created (stream NEW_IMAGE) with 3 items\n")

        outcome = init_schema(settings)
        echo(f"2. ddbrepl init-schema: {outcome.render()}\n")

        summary = backfill(settings, "Employees", progress=False)
        echo(f"3. ddbrepl backfill --table Employees: {summary.render()}")
        _show(echo, _rows(svc.database_url))
        echo("   (a name longer than varchar(20) is truncated; a missing department defaults to NA)\n")

        echo("4. ddbrepl tail --table Employees, following the stream while the application writes:\n")
        with _tailing(settings):
            steps: list[tuple[str, Callable[[], Any], Callable[[list[Any]], bool]]] = [
                ('put {"Id": 2001, "empDepartment": "AnyDept", "empName": "Akua"}',
                 lambda: ddb.put_item(TableName="Employees", Item={
                     "Id": {"N": "2001"}, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}}),
                 lambda rows: any(r[0] == 2001 for r in rows)),
                ("update Id 2001: empDepartment = ExDept",
                 lambda: ddb.update_item(TableName="Employees", Key={"Id": {"N": "2001"}},
                                         UpdateExpression="SET empDepartment = :d",
                                         ExpressionAttributeValues={":d": {"S": "ExDept"}}),
                 lambda rows: any(r[0] == 2001 and r[2] == "ExDept" for r in rows)),
                ("delete Id 2001",
                 lambda: ddb.delete_item(TableName="Employees", Key={"Id": {"N": "2001"}}),
                 lambda rows: not any(r[0] == 2001 for r in rows)),
            ]
            for label, act, arrived in steps:
                act()
                rows, took = _wait_for(svc.database_url, arrived)
                state = f"in PostgreSQL after {took:.2f}s" if arrived(rows) else "NOT arrived after 20s"
                echo(f"   DynamoDB: {label}  ->  {state}")
                _show(echo, rows)
                echo("")
                if label.startswith("put"):
                    echo("   (the stream's INSERT records of the 3 seeded items fall inside the hand-off margin "
                         "before the backfill's start,\n    so tail re-applies them: idempotent, and the rows are "
                         "now marked as stream-written)\n")
        echo("done: backfill and stream changes replicated; the checkpoints are in ddbrepl.checkpoints.")
        if keep and wait_forever is not None:
            base = (f"ddbrepl --endpoint-url {svc.endpoint_url} --database-url '{svc.database_url}' "
                    f"--mappings {mappings}")
            echo("\nBoth services keep running until you press Ctrl-C. Try:")
            echo(f"  {base} status")
            echo(f"  {base} verify --table Employees")
            echo(f"  {base} tail --table Employees        # then write with the AWS CLI:")
            echo(f"  aws dynamodb put-item --endpoint-url {svc.endpoint_url} --region us-east-1 "
                 "--table-name Employees --item '{\"Id\": {\"N\": \"7\"}, \"empName\": {\"S\": \"Yaw\"}}'")
            echo(f"  psql '{svc.database_url}' -c 'SELECT * FROM \"Employees\"'")
            wait_forever()
