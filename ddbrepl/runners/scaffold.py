"""`ddbrepl scaffold --table T`: a draft mapping from DescribeTable (keys) and a sample of items.

Every attribute seen in the sample becomes a column, with the PostgreSQL type its values suggest and how many
sampled items had it, so nobody hand-writes a mapping for a wide table and no attribute is silently missed. The
draft validates as is; review the types and names, then delete what you do not need.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ddbrepl.runners.common import aws_config
from ddbrepl.settings import Settings
from ddbrepl.sources.aws import dynamodb_client
from ddbrepl.sources.scan import TableInfo, describe_table, scan_segment

_KEY_TYPES = {"S": "text", "N": "numeric", "B": "bytea"}
_BIGINT = 2**63


@dataclass
class _Seen:
    """What the sample showed of one attribute."""

    items: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    strings: list[str] = field(default_factory=list)
    numbers: list[Decimal] = field(default_factory=list)

    def add(self, av: Mapping[str, Any]) -> None:
        self.items += 1
        tag, raw = next(iter(av.items()))
        self.tags[tag] += 1
        if tag == "S" and len(self.strings) < 200:
            self.strings.append(str(raw))
        elif tag == "N" and len(self.numbers) < 200:
            self.numbers.append(Decimal(str(raw)))


def _is(kind: type, text: str) -> bool:
    try:
        if kind is date:
            date.fromisoformat(text)
        elif kind is datetime:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            UUID(text)
    except ValueError:
        return False
    return True


def _number_type(numbers: Iterable[Decimal]) -> str:
    values = list(numbers)
    if values and all(v == v.to_integral_value() and -_BIGINT <= v < _BIGINT for v in values):
        return "bigint"
    return "numeric"


def suggest_type(seen: _Seen) -> str:
    """The PostgreSQL type for an attribute's sampled values; jsonb when kinds are mixed beyond repair."""
    tags = set(seen.tags) - {"NULL"}
    if not tags:
        return "text"
    if tags == {"S"}:
        strings = [s for s in seen.strings if s]
        if strings and all(len(s) == 10 and _is(date, s) for s in strings):
            return "date"
        if strings and all(len(s) > 10 and "T" in s and _is(datetime, s) for s in strings):
            return "timestamptz"
        if strings and all(len(s) == 36 and _is(UUID, s) for s in strings):
            return "uuid"
        return "text"
    if tags == {"N"}:
        return _number_type(seen.numbers)
    simple = {"BOOL": "boolean", "B": "bytea", "SS": "text[]", "NS": "numeric[]"}
    if len(tags) == 1 and next(iter(tags)) in simple:
        return simple[next(iter(tags))]
    if tags == {"S", "N"}:
        return "text"
    return "jsonb"


def column_name(attribute: str, taken: set[str]) -> str:
    """A valid, unique (after case folding) PostgreSQL identifier for ``attribute``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", attribute) or "attribute"
    if name[0].isdigit():
        name = f"a_{name}"
    name = name[:63]
    base, n = name, 2
    while name.lower() in taken:
        suffix = f"_{n}"
        name, n = base[: 63 - len(suffix)] + suffix, n + 1
    taken.add(name.lower())
    return name


def _path(attribute: str) -> str:
    return attribute if re.fullmatch(r"[^.\[\]\"$][^.\[\]\"]*", attribute) else json.dumps(attribute)


def _yaml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar, quoting included


def render(info: TableInfo, seen: Mapping[str, _Seen], sampled: int) -> str:
    """The draft mapping as YAML text, keys first, then attributes by how often they were seen."""
    taken: set[str] = {"_ddb_seq", "_ddb_synced_at", "deleted_at"}
    table = column_name(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", info.name).lower(), set())
    lines = [
        f"# Draft mapping for DynamoDB table {info.name}, written by `ddbrepl scaffold` from {sampled} sampled "
        "item(s).",
        "# Review the types and names; delete the columns you do not need. `ddbrepl validate` checks it.",
        "version: 1",
        "source:",
        f"  table: {_yaml(info.name)}",
        f"  key: [{', '.join(_yaml(k) for k in info.key_names)}]",
        "target:",
        f"  table: {table}",
        "columns:",
    ]
    key_types = {info.partition_key.name: info.partition_key.type}
    if info.sort_key is not None:
        key_types[info.sort_key.name] = info.sort_key.type
    for attr, key_type in key_types.items():
        sql_type = _KEY_TYPES[key_type]
        if key_type == "N" and attr in seen:
            sql_type = _number_type(seen[attr].numbers)
        name = column_name(attr, taken)
        lines.append(f"  - {{name: {name}, from: {_yaml(_path(attr))}, type: {sql_type}, primary_key: true}}")
    others = sorted((a for a in seen if a not in key_types), key=lambda a: (-seen[a].items, a))
    for attr in others:
        s = seen[attr]
        sql_type = suggest_type(s)
        kinds = ", ".join(f"{t} {n}" for t, n in s.tags.most_common())
        name = column_name(attr, taken)
        lines.append(f"  - {{name: {name}, from: {_yaml(_path(attr))}, type: {_yaml(sql_type)}}}"
                     f"  # in {s.items}/{sampled} items ({kinds})")
    return "\n".join(lines) + "\n"


def scaffold(settings: Settings, table: str, *, sample: int = 1000) -> str:
    """Describe ``table``, read up to ``sample`` items, and return the draft mapping."""
    client = dynamodb_client(aws_config(settings))
    info = describe_table(client, table)
    seen: dict[str, _Seen] = {}
    sampled = 0
    for page in scan_segment(client, table, 0, 1, None, limit=min(sample, 1000)):
        for item in page.items:
            for attr, av in item.items():
                seen.setdefault(attr, _Seen()).add(av)
            sampled += 1
            if sampled >= sample:
                break
        if sampled >= sample:
            break
    return render(info, seen, sampled)
