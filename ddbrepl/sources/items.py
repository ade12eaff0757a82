"""Fetch current items by key with BatchGetItem (strongly consistent), for KEYS_ONLY and OLD_IMAGE streams.

Such a stream says *which* item changed but not into what; the tail runner asks the table for the item as it is
now. Applying the current state for an older change is harmless: changes of a key are applied in shard order and
the last one applied carries the same current state, so the row converges. An item that no longer exists reads as
absent (the runner turns the change into a delete).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ddbrepl.errors import Retriable
from ddbrepl.records import AttrMap, RawChange
from ddbrepl.sources.aws import aws_errors
from ddbrepl.sources.fastpath import json_key, wire_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_KEYS = 100
"""BatchGetItem takes at most 100 keys per call."""
MAX_ROUNDS = 12


def key_id(keys: AttrMap) -> bytes:
    """A hashable identity of a key set, equal whether B values are bytes or base64 text."""
    return orjson.dumps(json_key(keys), option=orjson.OPT_SORT_KEYS)


def get_items(client: DynamoDBClient, table: str, keys: Iterable[AttrMap], key_names: Iterable[str],
              *, consistent: bool = True) -> dict[bytes, AttrMap]:
    """The current items for ``keys`` (duplicates read once), by :func:`key_id` of their key attributes.

    Keys missing from the result no longer exist. UnprocessedKeys are retried with backoff; when they never drain,
    :class:`ddbrepl.errors.Retriable` asks the caller to redo the batch.
    """
    names = tuple(key_names)
    wanted: dict[bytes, dict[str, Any]] = {}
    for k in keys:
        wanted.setdefault(key_id({n: k[n] for n in names}), wire_key(k))
    found: dict[bytes, AttrMap] = {}
    todo = list(wanted.values())
    action = f"BatchGetItem on {table!r}"
    for i in range(0, len(todo), BATCH_KEYS):
        request: Mapping[str, Any] = {table: {"Keys": todo[i:i + BATCH_KEYS], "ConsistentRead": consistent}}
        for attempt in range(MAX_ROUNDS):
            with aws_errors(action):
                response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, ()):
                found[key_id({n: item[n] for n in names})] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(2.0, 0.05 * 2**attempt))
        else:
            raise Retriable(f"{action}: unprocessed keys did not drain after {MAX_ROUNDS} rounds")
    return found


def current_items(client: DynamoDBClient, table: str, changes: Sequence[RawChange], key_names: Sequence[str]
                  ) -> list[RawChange]:
    """Replace each INSERT/MODIFY image with the item as it is now; an item gone since becomes a REMOVE."""
    keys = [c.keys for c in changes if c.event != "REMOVE"]
    found = get_items(client, table, keys, key_names) if keys else {}
    out = []
    for c in changes:
        if c.event == "REMOVE":
            out.append(c)
            continue
        item = found.get(key_id({n: c.keys[n] for n in key_names}))
        out.append(dataclasses.replace(c, new_image=item) if item is not None
                   else dataclasses.replace(c, event="REMOVE", new_image=None))
    return out
