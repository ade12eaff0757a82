"""The ``$item`` fast path's JSON text is jsonb-equal in PostgreSQL to the reference path's, on export-shaped items
(B as base64 text, N spelled as a client may spell it), read back in one set-based statement."""

from __future__ import annotations

import base64
import random
from decimal import Decimal
from typing import Any

import psycopg

from ddbrepl.codec.attrs import decode_item
from ddbrepl.codec.convert import to_json
from ddbrepl.codec.jsontext import item_json
from tests.helpers import SERIALIZER, mixed_item

SPELLINGS = ["1E+100", "1e100", "0.0000001", "1E-7", "-0", "0.50", "12345678901234567890.123456789012345678", "7"]


def _export(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _export(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_export(v) for v in value]
    return value


def test_fast_item_json_is_jsonb_equal_to_the_reference(pg: psycopg.Connection[Any]) -> None:
    rng = random.Random(7)
    images = []
    for i in range(300):
        image = {k: _export(SERIALIZER.serialize(v)) for k, v in mixed_item(i, rng).items()}
        image["spelled"] = {"N": rng.choice(SPELLINGS)}
        image["many"] = {"L": [{"N": s} for s in SPELLINGS] + [{"M": {"n": {"N": rng.choice(SPELLINGS)}}}]}
        images.append(image)
    fast = [item_json(image) for image in images]
    assert None not in fast
    reference = [to_json(decode_item(image)) for image in images]
    row = pg.execute(
        "SELECT count(*), count(*) FILTER (WHERE f::jsonb = r::jsonb) FROM unnest(%s::text[], %s::text[]) AS t(f, r)",
        (fast, reference),
    ).fetchone()
    assert row == (300, 300)
    # And the numbers really are exact in jsonb: 1e100 spelled out in full, not a float.
    (value,) = pg.execute("SELECT (%s::jsonb ->> 'spelled')::numeric", (item_json({"spelled": {"N": "1e100"}}),)
                          ).fetchone() or (None,)
    assert value == Decimal("1E+100")
