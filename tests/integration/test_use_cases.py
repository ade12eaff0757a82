"""The use cases people build by hand (../shared/USE-CASES.md), each as a shipped mapping, replicated through the
DynamoDB stream by `ddbrepl tail --until-idle` on moto + real PostgreSQL, and checked in SQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address
from typing import Any

import psycopg

from tests.helpers import ROOT, create_table, ddb, ddbrepl, put_items

MAPPINGS = ROOT / "mappings"
LINKED = (MAPPINGS.parent / "docs" / "identity-resolution.md").read_text().split("```sql")[1].split("```")[0]


def replicate(aws_url: str, pg_url: str, *mapping_files: str) -> str:
    args = ["--endpoint-url", aws_url, "--database-url", pg_url]
    for name in mapping_files:
        args += ["--mappings", str(MAPPINGS / name)]
    ddbrepl(*args, "init-schema")
    return ddbrepl(*args, "tail", "--until-idle", "--no-progress").stdout


def test_access_log_prefixes_stripped_into_typed_columns(aws_url: str, pg_url: str,
                                                         pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "logfile", [("PK", "S")])
    put_items(aws_url, "logfile", [
        {"PK": "request#104009", "GSI_1_PK": "host#66.249.67.3", "bytessent": Decimal(2969), "date": "2009-07-21",
         "hourofday": Decimal(14), "method": "get", "requestid": Decimal(104009), "responsecode": "200",
         "timezone": "GMT-0700", "url": "/gallery/main.php?g2_itemId=11", "useragent": "Googlebot/2.1"},
        {"PK": "request#104010", "GSI_1_PK": "host#10.0.0.7", "bytessent": "512", "date": "2009-07-22",
         "hourofday": "3", "method": "POST", "responsecode": Decimal(404), "url": "/x"},
    ])
    replicate(aws_url, pg_url, "access_log.yaml")
    rows = pg.execute("SELECT request_id, host, bytes_sent, log_date, hour_of_day, method, response_code "
                      "FROM access_log ORDER BY 1").fetchall()
    assert rows == [
        (104009, IPv4Address("66.249.67.3"), 2969, date(2009, 7, 21), 14, "GET", 200),
        (104010, IPv4Address("10.0.0.7"), 512, date(2009, 7, 22), 3, "POST", 404),
    ]


def test_only_modify_events_of_completed_users(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Users", [("UserId", "N")])
    put_items(aws_url, "Users", [
        {"UserId": Decimal(i), "Username": f"user{i}", "Email": f"User{i}@Example.com", "status": "pending"}
        for i in (1, 2, 3)])
    client = ddb(aws_url)
    for user, status in ((1, "completed"), (2, "cancelled"), (3, "completed"), (3, "completed")):
        client.update_item(TableName="Users", Key={"UserId": {"N": str(user)}}, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}})
    client.put_item(TableName="Users", Item={"UserId": {"N": "4"}, "status": {"S": "completed"}})  # an INSERT
    replicate(aws_url, pg_url, "completed_users.yaml")
    rows = pg.execute("SELECT user_id, username, email, status, completed_at FROM completed_users "
                      "ORDER BY 1").fetchall()
    assert [r[:4] for r in rows] == [(1, "user1", "user1@example.com", "completed"),
                                     (3, "user3", "user3@example.com", "completed")]
    assert all(isinstance(r[4], datetime) for r in rows)


def test_crm_users_hard_and_soft_deletes(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "CrmUsers", [("userId", "N")])
    put_items(aws_url, "CrmUsers", [
        {"userId": Decimal(1), "emailAddress": " Ada@Example.com", "fullname": "Ada L", "date_of_birth": "1815-12-10"},
        {"userId": Decimal(2), "emailAddress": "alan@example.com", "fullname": "Alan T", "date_of_birth": "1912-06-23"},
    ])
    client = ddb(aws_url)
    client.update_item(TableName="CrmUsers", Key={"userId": {"N": "1"}}, UpdateExpression="SET fullname = :n",
                       ExpressionAttributeValues={":n": {"S": "Ada Lovelace"}})
    client.delete_item(TableName="CrmUsers", Key={"userId": {"N": "2"}})
    replicate(aws_url, pg_url, "crm_users.yaml", "crm_users_history.yaml")
    assert pg.execute("SELECT user_id, email, full_name, date_of_birth FROM crm_users").fetchall() == [
        (1, "ada@example.com", "Ada Lovelace", date(1815, 12, 10))]
    history = pg.execute("SELECT user_id, full_name, deleted_at IS NOT NULL FROM crm_users_history "
                         "ORDER BY 1").fetchall()
    assert history == [(1, "Ada Lovelace", False), (2, "Alan T", True)]


def test_single_table_design_split_into_three_tables(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "App", [("PK", "S"), ("SK", "S")])
    put_items(aws_url, "App", [
        {"PK": "USER#7", "SK": "PROFILE", "name": "Akua", "email": "AKUA@example.com"},
        {"PK": "USER#7", "SK": "ORDER#1001", "status": "paid", "total": Decimal("31.50"),
         "orderedAt": "2026-11-20T10:00:00Z"},
        {"PK": "ORDER#1001", "SK": "ITEM#1", "sku": "TEA-01", "qty": Decimal(2), "price": Decimal("9.75")},
        {"PK": "ORDER#1001", "SK": "ITEM#2", "sku": "MUG-02", "qty": Decimal(1), "price": Decimal("12.00")},
        {"PK": "USER#8", "SK": "PROFILE", "name": "Kofi"},
        {"PK": "USER#8", "SK": "SETTINGS", "theme": "dark"},  # an entity no mapping takes
    ])
    ddb(aws_url).delete_item(TableName="App", Key={"PK": {"S": "ORDER#1001"}, "SK": {"S": "ITEM#2"}})
    replicate(aws_url, pg_url, "app_users.yaml", "app_orders.yaml", "app_order_items.yaml")
    assert pg.execute("SELECT user_id, name, email FROM app_users ORDER BY 1").fetchall() == [
        (7, "Akua", "akua@example.com"), (8, "Kofi", None)]
    assert pg.execute("SELECT order_id, user_id, status, total FROM app_orders").fetchall() == [
        (1001, 7, "paid", Decimal("31.50"))]
    joined = pg.execute(
        "SELECT u.name, o.order_id, i.line, i.sku, i.qty * i.price FROM app_users u "
        "JOIN app_orders o USING (user_id) JOIN app_order_items i USING (order_id)").fetchall()
    assert joined == [("Akua", 1001, 1, "TEA-01", Decimal("19.50"))]
    assert pg.execute("SELECT count(*) FROM ddbrepl.dead_letters").fetchone() == (0,)


def linked(pg: psycopg.Connection[Any], profile_id: str) -> list[str]:
    return [r[0] for r in pg.execute(LINKED, {"profile_id": profile_id}).fetchall()]


def test_identity_resolution_over_schemaless_profiles(aws_url: str, pg_url: str, pg: psycopg.Connection[Any]) -> None:
    create_table(aws_url, "Profiles", [("profile_id", "S")])
    put_items(aws_url, "Profiles", [
        {"profile_id": "p1", "platform": "web", "metadata": {"email": "A@X.com ", "cookie_id": "c-1"}},
        {"profile_id": "p2", "platform": "ios", "metadata": {"email": "a@x.com", "device_id": "d-9"}},
        {"profile_id": "p3", "platform": "android", "metadata": {"device_id": "d-9", "name": "Bob"}},
        {"profile_id": "p4", "platform": "web", "metadata": {"phone": "+233 20 000", "name": "Bob"}},
    ])
    replicate(aws_url, pg_url, "profiles.yaml")
    assert linked(pg, "p1") == ["p1", "p2", "p3"]
    assert linked(pg, "p4") == ["p4"]  # a shared name does not link: `name` is not exploded
    assert pg.execute("SELECT attribute, value FROM profile_identifiers WHERE profile_id = 'p1' "
                      "ORDER BY 1").fetchall() == [("cookie_id", "c-1"), ("email", "a@x.com")]

    client = ddb(aws_url)
    client.delete_item(TableName="Profiles", Key={"profile_id": {"S": "p2"}})  # the bridge goes
    client.update_item(TableName="Profiles", Key={"profile_id": {"S": "p4"}},
                       UpdateExpression="SET metadata.device_id = :d",
                       ExpressionAttributeValues={":d": {"S": "d-9"}})  # p4 now shares a device with p3
    replicate(aws_url, pg_url, "profiles.yaml")
    assert linked(pg, "p1") == ["p1"]
    assert linked(pg, "p3") == ["p3", "p4"]
    assert pg.execute("SELECT count(*) FROM profile_identifiers WHERE profile_id = 'p2'").fetchone() == (0,)
