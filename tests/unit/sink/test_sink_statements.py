"""The sink's SQL, rendered without a server: identifiers quoted, guards present, no values inlined."""

from __future__ import annotations

import json
from decimal import Decimal

from psycopg import sql

from ddbrepl.mapping.model import TableRef
from ddbrepl.records import Delete, Op, RawChange, Rejected, Upsert
from ddbrepl.sink import statements as st
from ddbrepl.sink.apply import collapse
from ddbrepl.state.deadletters import change_from_record, change_record, to_json

TARGET = st.table(TableRef("Sales", "Order Lines"))
COLUMNS = ["Id", "Order", 'we"ird']
KEYS = ["Id"]


def render(stmt: sql.Composable) -> str:
    return stmt.as_string(None)


def test_identifiers_are_quoted() -> None:
    text = render(st.merge(TARGET, "stage", COLUMNS, KEYS, guard="none", soft=False))
    assert text.startswith('INSERT INTO "Sales"."Order Lines" AS t ("Id", "Order", "we""ird", "_ddb_seq"')
    assert 'ON CONFLICT ("Id") DO UPDATE SET "Order" = EXCLUDED."Order", "we""ird" = EXCLUDED."we""ird"' in text
    assert 'ORDER BY "s"."Id"' in text
    assert "WHERE t." not in text.split("DO UPDATE")[1]  # stream changes overwrite unconditionally
    assert "tombstones" not in text


def test_backfill_guard_skips_stream_rows_and_tombstoned_keys() -> None:
    text = render(st.merge(TARGET, "stage", COLUMNS, KEYS, guard="backfill", soft=True))
    assert text.endswith('"deleted_at" = NULL WHERE "t"."_ddb_seq" IS NULL')
    assert 'NOT EXISTS (SELECT 1 FROM "ddbrepl"."tombstones" AS tb WHERE tb.target_table = %(target_table)s' in text
    assert 'tb.key = jsonb_build_array("s"."Id"))' in text


def test_replay_guard_compares_sequences() -> None:
    text = render(st.merge(TARGET, "stage", COLUMNS, KEYS, guard="replay", soft=False))
    assert text.endswith('WHERE ("t"."_ddb_seq" IS NULL OR "t"."_ddb_seq" < EXCLUDED."_ddb_seq")')
    assert 'tb.sequence > "s"."_ddb_seq"' in text
    delete = render(st.delete_hard(TARGET, "stage", KEYS, guard="replay"))
    assert delete.endswith('("t"."_ddb_seq" IS NULL OR "t"."_ddb_seq" < "s"."_ddb_seq")')


def test_batch_statement_counts_what_it_ran() -> None:
    text = render(
        st.batch(
            KEYS,
            merge=st.merge(TARGET, "stage", COLUMNS, KEYS, guard="none", soft=False),
            delete_hard=None,
            delete_soft=st.delete_soft(TARGET, "stage", KEYS, guard="none"),
            tombstones=st.write_tombstones("stage", KEYS, guard="none"),
        )
    )
    assert text.startswith('WITH "merged" AS (INSERT INTO')
    assert '"soft" AS (UPDATE "Sales"."Order Lines"' in text
    assert text.endswith('SELECT (SELECT count(*) FROM "merged"), 0, (SELECT count(*) FROM "soft")')


def test_collapse_last_op_per_key_and_soft_delete_keeps_values() -> None:
    ops: list[Op] = [
        Upsert((1,), (1, "a", None), 10),
        Upsert((2,), (2, "b", None), 11),
        Delete((1,), 12),
        Upsert((1,), (1, "c", None), 13),
        Upsert((3,), (3, "d", None), 14),
        Delete((3,), 15, soft=True),
        Rejected("m", "bad", RawChange("INSERT", {"Id": {"N": "9"}})),
    ]
    batch = collapse(ops)
    assert [u.values for u in batch.upserts] == [(1, "c", None), (2, "b", None)]
    assert batch.deletes == [Delete((3,), 15, soft=True)]
    assert [u.sequence for u in batch.before_soft] == [14]
    assert len(batch.rejected) == 1


def test_dead_letter_json_is_exact_and_storable() -> None:
    change = RawChange(
        "MODIFY",
        {"K": {"B": b"\x00\xff"}},
        new_image={"n": {"N": "1E+125"}, "d": Decimal("0.10"), "s": {"S": "a\x00b"}, "bs": {"BS": [b"\x01"]}},
        sequence=12345678901234567890123456789,
    )
    text = to_json(change_record(change))
    assert "\\u0000" not in text  # jsonb rejects NUL
    assert '"d":0.10' in text and '"sequence":"12345678901234567890123456789"' in text
    back = change_from_record(json.loads(text))
    assert back.sequence == change.sequence
    assert back.keys == {"K": {"B": "AP8="}}
    assert back.new_image is not None and back.new_image["s"] == {"S": "a\\x00b"}
