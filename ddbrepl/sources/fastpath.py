"""A faster response path for the hot read calls: the body parsed by orjson, not by botocore's shape walker.

botocore walks the operation's output shape for every attribute of every item; for Scan pages and GetRecords
batches that walk is a large share of the client's CPU time (≈ 20 % of a Scan read, ≈ 70 % of a GetRecords read).
The fast path keeps everything else of botocore — endpoint resolution, signing, retries and the adaptive rate
limiter, error parsing — and replaces only the parse of a *successful* body:

a ``before-parse.<service>.<Operation>`` handler (the same hook botocore uses for S3's ``Expires`` header) parses
the body with orjson into ``customized_response_dict``, which botocore merges into the parsed response, and hands
botocore's parser an empty JSON object, so it only adds ``ResponseMetadata``. Error responses (status ≥ 300) are
left untouched, so the exception classes, error codes and retry decisions stay exactly botocore's.

What differs from the plain boto3 shape, by design:

- items stay DynamoDB JSON, as always, but **B and BS values stay base64 strings** (boto3 gives bytes); the codec
  accepts both. A key sent back to DynamoDB (ExclusiveStartKey) must go through :func:`wire_key` first, or botocore
  would base64-encode the text a second time;
- timestamps (``ApproximateCreationDateTime``) stay numbers of epoch seconds; the stream source converts them.
"""

from __future__ import annotations

import base64
import gc
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

log = logging.getLogger(__name__)

FAST_OPERATIONS: Mapping[str, tuple[str, ...]] = {
    "dynamodb": ("Scan",),
    "dynamodb-streams": ("GetRecords",),
}
"""Operations whose successful bodies take the fast path, by hyphenised botocore service id.

Only calls whose outputs are not fed back into botocore as typed input are listed (Query/BatchGetItem would hand
base64 text back as UnprocessedKeys/ExclusiveStartKey without the caller knowing)."""

_EMPTY_BODY = b"{}"


def loads(body: bytes | bytearray) -> Any:
    """orjson.loads with the cyclic GC paused: a 1 MB page makes ~50 000 containers, and the collections they
    trigger (scanning every survivor, and the whole heap when gen 2 runs) cost 4-8x the parse itself.

    Only a collector this call paused is resumed; one the application disabled stays disabled. Threads may race
    here: at worst a collection runs during another thread's parse. Nothing is ever left disabled by us.
    """
    if not gc.isenabled():
        return orjson.loads(body)
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        gc.enable()


def _parse_with_orjson(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    if response_dict.get("status_code", 500) >= 300:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes | bytearray) or not body:
        return
    try:
        parsed = loads(body)
    except orjson.JSONDecodeError:
        return  # let botocore's parser deal with it exactly as it would without us
    if not isinstance(parsed, dict):
        return
    customized_response_dict.update(parsed)
    response_dict["body"] = _EMPTY_BODY


def install(client: Any, operations: Iterable[str] | None = None) -> None:
    """Route the given operations (default: :data:`FAST_OPERATIONS` for the client's service) to the fast path.

    Idempotent: botocore de-duplicates handlers registered under the same ``unique_id``.
    """
    service_id = client.meta.service_model.service_id.hyphenize()
    names = tuple(operations) if operations is not None else FAST_OPERATIONS.get(service_id, ())
    for name in names:
        client.meta.events.register(
            f"before-parse.{service_id}.{name}",
            _parse_with_orjson,
            unique_id=f"ddbrepl-fastpath-{service_id}-{name}",
        )
    if names:
        log.debug("fast response path on %s: %s", service_id, ", ".join(names))


def wire_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """Return a key fit to send back to DynamoDB: base64 text in B values becomes bytes again.

    Keys are top-level scalars (S, N or B), so only B needs care; bytes pass through unchanged.
    """
    out: dict[str, Any] = {}
    for name, value in key.items():
        raw = value.get("B") if isinstance(value, Mapping) else None
        out[name] = {"B": base64.b64decode(raw)} if isinstance(raw, str) else value
    return out


def json_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """Return a key as plain JSON: bytes in B values become base64 text (the form the fast path yields).

    Positions leave the sources in this form whatever path read them, so a runner can store them as jsonb.
    """
    out: dict[str, Any] = {}
    for name, value in key.items():
        raw = value.get("B") if isinstance(value, Mapping) else None
        out[name] = {"B": base64.b64encode(raw).decode("ascii")} if isinstance(raw, bytes | bytearray) else value
    return out
