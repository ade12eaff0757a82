"""Parse PostgreSQL type names as a mapping file spells them into SqlType."""

from __future__ import annotations

import difflib
import re

from ddbrepl.mapping.model import BASE_TYPES, SqlType

_ALIASES = {
    "int": "integer",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "double": "double precision",
    "bool": "boolean",
    "decimal": "numeric",
    "character varying": "varchar",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}
_TYPE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(\[\])?\s*$")
MAX_NUMERIC_PRECISION = 1000
MAX_VARCHAR = 10_485_760


def parse_type(text: str) -> SqlType:
    """Parse ``text``; raise ValueError whose message proposes the nearest valid spelling."""
    m = _TYPE.match(text.lower())
    base = _ALIASES.get(m.group(1), m.group(1)) if m else ""
    if m is None or base not in BASE_TYPES:
        word = re.split(r"[(\[]", text.lower(), maxsplit=1)[0].strip()
        near = difflib.get_close_matches(word, [*BASE_TYPES, *_ALIASES], n=1, cutoff=0.6)
        rest = text[len(word):] if near else ""
        hint = f" (did you mean {_ALIASES.get(near[0], near[0])}{rest}?)" if near else ""
        raise ValueError(f"{text!r} is not a supported type{hint}; supported: " + ", ".join(BASE_TYPES)
                         + ", and arrays such as text[]")
    first, second, array = m.group(2), m.group(3), m.group(4) is not None
    if base == "varchar":
        if second is not None:
            raise ValueError(f"{text!r}: varchar takes one length, e.g. varchar(20)")
        length = int(first) if first is not None else None
        if length is not None and not 1 <= length <= MAX_VARCHAR:
            raise ValueError(f"{text!r}: varchar length must be between 1 and {MAX_VARCHAR}")
        return SqlType("varchar", length=length, array=array)
    if base == "numeric":
        if first is None:
            return SqlType("numeric", array=array)
        precision, scale = int(first), int(second or 0)
        if not 1 <= precision <= MAX_NUMERIC_PRECISION:
            raise ValueError(f"{text!r}: numeric precision must be between 1 and {MAX_NUMERIC_PRECISION}")
        if scale > precision:
            raise ValueError(f"{text!r}: numeric scale {scale} is larger than its precision {precision}")
        return SqlType("numeric", precision=precision, scale=scale, array=array)
    if first is not None:
        raise ValueError(f"{text!r}: {base} takes no length or precision; write {base}")
    return SqlType(base, array=array)
