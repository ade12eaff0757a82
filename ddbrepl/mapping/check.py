"""Check mapping files and build the model: every problem of every file, each with file:line:col and a fix.

Two passes per file: the JSON Schema (shipped in the package, printed by `ddbrepl schema`) through
``iter_errors``, then semantic rules the schema cannot say (types, identifiers, keys, transforms, children).
Cross-file rules (one writer per target table, unique names) run over the whole set.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from ddbrepl.errors import MappingError, Problem
from ddbrepl.mapping.load import JsonPath, LoadedFile, load_file, mapping_files
from ddbrepl.mapping.model import (
    DELETED_COLUMN,
    SEQ_COLUMN,
    SYNCED_COLUMN,
    AttrPath,
    Child,
    Column,
    ColumnRef,
    Condition,
    Filter,
    Mapping,
    SqlType,
    TableRef,
    Transform,
)
from ddbrepl.mapping.paths import parse_path
from ddbrepl.mapping.types import parse_type

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER_BYTES = 63
RESERVED_COLUMNS = (SEQ_COLUMN, SYNCED_COLUMN)
TEXT_TRANSFORMS = ("strip_prefix", "regex", "lower", "upper", "trim")
STRING_PARSED_TYPES = ("text", "varchar", "uuid", "inet", "date", "timestamp", "timestamptz", "json", "jsonb")


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file (package data)."""
    text = resources.files("ddbrepl.mapping").joinpath("schema.json").read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


def _schema_problem(f: LoadedFile, err: jsonschema.ValidationError) -> Problem:
    where: JsonPath = tuple(err.absolute_path)
    validator = err.validator
    if validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(cast(dict[str, Any], err.schema).get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        key = extra[0] if extra else "?"
        near = difflib.get_close_matches(str(key), allowed, n=1)
        fix = f"did you mean {near[0]!r}?" if near else "allowed keys: " + ", ".join(allowed)
        if re.match(r"^\s*\d+\s*\)", str(key)):
            fix = ("a comma inside { … } splits the entry: quote the value, e.g. type: \"numeric(12,2)\"")
        return f.problem((*where, key), f"unknown key {key!r}; {fix}", at_key=True)
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        name = missing[0] if missing else err.message
        return f.problem(where, f"missing required key {name!r}")
    if validator == "oneOf" and "transform" in [str(p) for p in where]:
        return f.problem(where, f"{err.instance!r} is not a transform; use lower, upper, trim, {{strip_prefix: …}}, "
                         "{regex: …}, {epoch: seconds|millis}, {map: {…}}, or {parse: number|boolean}")
    if validator == "const" and where == ("version",):
        return f.problem(where, f"unsupported version {err.instance!r}; this ddbrepl reads `version: 1`")
    if validator in ("minProperties", "maxProperties") and "where" in [str(p) for p in where]:
        return f.problem(where, "a condition has `attribute:` and exactly one of equals, not_equals, begins_with, "
                         "exists, in")
    return f.problem(where, err.message)


class _Checker:
    """Semantic rules for one file; collects problems and returns the model when there are none."""

    def __init__(self, f: LoadedFile) -> None:
        self.f = f
        self.problems: list[Problem] = []

    def bad(self, where: JsonPath, message: str) -> None:
        self.problems.append(self.f.problem(where, message))

    def identifier(self, where: JsonPath, name: str, what: str) -> None:
        if not IDENTIFIER.match(name):
            fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
            self.bad(where, f"{what} {name!r} may contain only letters, digits and '_' and must not start with a "
                     f"digit (try {fixed!r})")
        elif len(name.encode()) > MAX_IDENTIFIER_BYTES:
            self.bad(where, f"{what} {name!r} is {len(name.encode())} bytes; PostgreSQL keeps only "
                     f"{MAX_IDENTIFIER_BYTES} (shorten it)")

    def table_ref(self, where: JsonPath, raw: dict[str, Any]) -> TableRef:
        schema = str(raw.get("schema", "public"))
        table = str(raw["table"])
        if "schema" in raw:
            self.identifier((*where, "schema"), schema, "schema")
            if schema.lower() == "ddbrepl":
                self.bad((*where, "schema"), "schema 'ddbrepl' holds ddbrepl's own state; pick another schema")
        self.identifier((*where, "table"), table, "table")
        return TableRef(schema, table)

    def path(self, where: JsonPath, text: str, *, in_child: bool = False) -> AttrPath | None:
        try:
            return parse_path(text, in_child=in_child)
        except ValueError as exc:
            self.bad(where, str(exc))
            return None

    def transforms(self, where: JsonPath, raw: Any, sql_type: SqlType | None) -> tuple[Transform, ...]:
        items = raw if isinstance(raw, list) else [raw]
        out: list[Transform] = []
        for i, item in enumerate(items):
            here = (*where, i) if isinstance(raw, list) else where
            if isinstance(item, str):
                out.append(Transform(cast(Any, item)))
                continue
            kind, arg = next(iter(item.items()))
            if kind == "regex":
                try:
                    if re.compile(arg).groups < 1:
                        self.bad((*here, kind), f"regex {arg!r} has no group; wrap the part to keep in ( )")
                except re.error as exc:
                    self.bad((*here, kind), f"regex {arg!r} does not compile: {exc}")
            if kind == "map":
                arg = tuple((str(k), v) for k, v in arg.items())
            out.append(Transform(kind, arg))
        if sql_type is not None:
            self.transforms_fit(where, out, sql_type)
        return tuple(out)

    def transforms_fit(self, where: JsonPath, ts: Sequence[Transform], t: SqlType) -> None:
        for tr in ts:
            if tr.kind == "epoch" and not t.is_temporal:
                self.bad(where, f"transform epoch makes a timestamp; the column type {t.render()} cannot hold it "
                         "(use timestamptz)")
            if tr.kind == "parse" and tr.arg == "number" and not (t.is_numeric or t.is_text):
                self.bad(where, f"transform parse: number does not fit type {t.render()}")
            if tr.kind == "parse" and tr.arg == "boolean" and t.base != "boolean":
                self.bad(where, f"transform parse: boolean needs a boolean column, not {t.render()}")
        last = ts[-1].kind if ts else None
        if last in TEXT_TRANSFORMS and t.base not in STRING_PARSED_TYPES:
            wanted = "boolean" if t.base == "boolean" else "number"
            self.bad(where, f"transform {last} yields text; a {t.render()} column needs it parsed: add "
                     f"{{parse: {wanted}}} after it")

    def column(self, where: JsonPath, raw: dict[str, Any], *, in_child: bool) -> Column | None:
        self.identifier((*where, "name"), raw["name"], "column")
        if raw["name"] in (*RESERVED_COLUMNS, DELETED_COLUMN) and not in_child:
            self.bad((*where, "name"), f"column name {raw['name']!r} is reserved for ddbrepl's bookkeeping")
        try:
            sql_type: SqlType | None = parse_type(raw["type"])
        except ValueError as exc:
            self.bad((*where, "type"), str(exc))
            sql_type = None
        source = self.path((*where, "from"), raw["from"], in_child=in_child)
        transforms = self.transforms((*where, "transform"), raw["transform"], sql_type) if "transform" in raw else ()
        if sql_type is not None and source is not None:
            self.source_fits((*where, "from"), source, sql_type)
        if "on_overflow" in raw and sql_type is not None and not (sql_type.base == "varchar" and sql_type.length):
            self.bad((*where, "on_overflow"), f"on_overflow applies to varchar(n) columns, not {sql_type.render()}")
        if raw.get("primary_key") and "default" in raw:
            self.bad((*where, "default"), "a primary-key column cannot have a default: the key comes from the item")
        if raw.get("primary_key") and raw.get("nullable") is True:
            self.bad((*where, "nullable"), "a primary-key column cannot be nullable")
        if sql_type is None or source is None:
            return None
        ref = raw.get("references")
        references = ColumnRef(ref.get("schema", "public"), ref["table"], ref["column"]) if ref else None
        default = raw.get("default")
        if isinstance(default, float):
            default = Decimal(str(default))
        return Column(
            name=raw["name"],
            source=source,
            sql_type=sql_type,
            primary_key=bool(raw.get("primary_key", False)),
            nullable=bool(raw.get("nullable", not raw.get("primary_key", False))),
            default=default,
            on_overflow=raw.get("on_overflow", "error"),
            transforms=transforms,
            references=references,
        )

    def source_fits(self, where: JsonPath, source: AttrPath, t: SqlType) -> None:
        if source.root == "item" and not t.is_json:
            self.bad(where, f"$item is the whole item; store it in a jsonb column, not {t.render()}")
        if source.root == "event":
            want = {"name": ("text", "varchar"), "time": ("timestamptz", "timestamp"),
                    "sequence": ("numeric", "text", "varchar")}[str(source.steps[0])]
            if t.base not in want or t.array:
                self.bad(where, f"{source.text} fits a {' or '.join(want)} column, not {t.render()}")

    def unique_names(self, where: JsonPath, columns: Sequence[tuple[int, str]], extra: Iterable[str] = ()) -> None:
        seen: dict[str, str] = {name.lower(): name for name in extra}
        for i, name in columns:
            folded = name.lower()
            if folded in seen:
                self.bad((*where, i, "name"), f"column {name!r} collides with {seen[folded]!r} (names must differ "
                         "after case folding); rename one")
            seen[folded] = name

    def filters(self, raw: dict[str, Any] | None) -> Filter | None:
        if raw is None:
            return None
        conditions: list[Condition] = []
        for i, cond in enumerate(raw.get("where", [])):
            op, value = next((k, v) for k, v in cond.items() if k != "attribute")
            path = self.path(("filter", "where", i, "attribute"), cond["attribute"])
            if path is not None and path.root != "attr":
                self.bad(("filter", "where", i, "attribute"), "conditions test item attributes, not " + path.text)
            if isinstance(value, float):
                value = Decimal(str(value))
            if op == "in":
                value = tuple(Decimal(str(v)) if isinstance(v, float) else v for v in value)
            if path is not None:
                conditions.append(Condition(path, op, value))
        events = frozenset(raw.get("events", ("INSERT", "MODIFY", "REMOVE")))
        return Filter(events, tuple(conditions))

    def keys(self, doc: dict[str, Any], columns: Sequence[Column | None], flt: Filter | None) -> None:
        key_attrs: list[str] = doc["source"]["key"]
        pinned = {c.path.top for c in (flt.where if flt else ()) if c.op == "equals" and len(c.path.steps) == 1}
        built = [c for c in columns if c is not None]
        for attr in key_attrs:
            # A key attribute read by an ordinary column is the single-table pattern (an order's id is unique
            # without its user's): the mapping author vouches for the uniqueness of the other key columns.
            if not any(c.source.top == attr and len(c.source.steps) == 1 for c in built) and attr not in pinned:
                self.bad(("source", "key"), f"key attribute {attr!r} is not mapped; add "
                         f"`{{name: {attr}, from: {attr}, type: …, primary_key: true}}` (or pin it with a filter "
                         "`equals` condition)")
        for i, c in enumerate(columns):
            if c is not None and c.primary_key and (c.source.top not in key_attrs or len(c.source.steps) != 1):
                self.bad(("columns", i, "from"), f"primary-key column {c.name!r} reads {c.source.text!r}, which is not "
                         f"a key attribute ({', '.join(key_attrs)}); deletes carry only the key, so the primary "
                         "key must come from it")
        if built and not any(c.primary_key for c in built):
            self.bad(("columns",), "no column has `primary_key: true`")

    def indexes(self, where: JsonPath, raw: list[list[str]] | None,
                names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
        known = {n.lower(): n for n in names}
        for i, cols in enumerate(raw or []):
            for j, col in enumerate(cols):
                if col.lower() not in known:
                    self.bad((*where, i, j), f"index column {col!r} is not a column of this table (columns: "
                             f"{', '.join(names)})")
        return tuple(tuple(known.get(c.lower(), c) for c in cols) for cols in raw or [])

    def child(self, i: int, raw: dict[str, Any], parent_keys: Sequence[Column]) -> Child | None:
        where: JsonPath = ("children", i)
        target = self.table_ref((*where, "target"), raw["target"])
        source = self.path((*where, "from"), raw["from"])
        if source is not None and source.root != "attr":
            self.bad((*where, "from"), "children explode a list or map attribute, e.g. `from: metadata`")
        cols = [self.column((*where, "columns", j), c, in_child=True) for j, c in enumerate(raw["columns"])]
        self.unique_names((*where, "columns"), [(j, c["name"]) for j, c in enumerate(raw["columns"])],
                          extra=[k.name for k in parent_keys] + list(RESERVED_COLUMNS))
        if not any(c.get("primary_key") for c in raw["columns"]):
            self.bad((*where, "columns"), "a child needs a primary-key column besides the parent key, usually "
                     "`{name: position, from: $index, type: integer, primary_key: true}` or one reading $key")
        for j, c in enumerate(cols):
            if c is not None and c.primary_key and c.source.root != "element":
                self.bad((*where, "columns", j, "from"), "a child's primary-key column reads $index, $key or $value")
        if source is None or any(c is None for c in cols):
            return None
        only = frozenset(raw["only_keys"]) if "only_keys" in raw else None
        names = [k.name for k in parent_keys] + [c["name"] for c in raw["columns"]]
        indexes = self.indexes((*where, "indexes"), raw.get("indexes"), names)
        return Child(target, source, tuple(c for c in cols if c is not None), only, indexes)

    def mapping(self) -> Mapping | None:
        doc = self.f.doc
        target = self.table_ref(("target",), doc["target"])
        columns = [self.column(("columns", i), c, in_child=False) for i, c in enumerate(doc["columns"])]
        self.unique_names(("columns",), [(i, c["name"]) for i, c in enumerate(doc["columns"])])
        flt = self.filters(doc.get("filter"))
        self.keys(doc, columns, flt)
        key_cols = [c for c in columns if c is not None and c.primary_key]
        children = [self.child(i, c, key_cols) for i, c in enumerate(doc.get("children", []))]
        indexes = self.indexes(("indexes",), doc.get("indexes"), [c["name"] for c in doc["columns"]]
                               + [SEQ_COLUMN, SYNCED_COLUMN, DELETED_COLUMN])
        soft = doc.get("delete") == "soft" or doc.get("ttl_delete") == "soft"
        if soft and any(c["name"].lower() == DELETED_COLUMN for c in doc["columns"]):
            self.bad(("columns",), f"{DELETED_COLUMN!r} is added by soft deletes; rename your column")
        if self.problems or any(c is None for c in columns) or any(c is None for c in children):
            return None
        delete = doc.get("delete", "hard")
        return Mapping(
            name=str(doc.get("name", self.f.path.stem)),
            path=self.f.path,
            source_table=doc["source"]["table"],
            source_key=tuple(doc["source"]["key"]),
            target=target,
            columns=tuple(c for c in columns if c is not None),
            filter=flt,
            delete=delete,
            ttl_delete=doc.get("ttl_delete", delete),
            children=tuple(c for c in children if c is not None),
            indexes=indexes,
        )


def check_file(f: LoadedFile) -> tuple[Mapping | None, list[Problem]]:
    """All problems of one loaded file, and its model when it has none."""
    if f.problems and f.doc is None:
        return None, list(f.problems)
    problems = list(f.problems)
    if not isinstance(f.doc, dict):
        return None, [*problems, f.problem((), "a mapping file is a YAML mapping that starts with `version: 1`")]
    validator = jsonschema.Draft202012Validator(json_schema())
    errors = sorted(validator.iter_errors(f.doc), key=lambda e: f.where(tuple(e.absolute_path)))
    problems += [_schema_problem(f, e) for e in errors]
    if problems:
        return None, problems
    checker = _Checker(f)
    model = checker.mapping()
    return model, checker.problems


def _reference_problems(f: LoadedFile, where: JsonPath, column: Column, models: Sequence[Mapping]) -> list[Problem]:
    ref = column.references
    assert ref is not None
    folded = (ref.schema.lower(), ref.table.lower())
    target = next((m for m in models if (m.target.schema.lower(), m.target.table.lower()) == folded), None)
    if target is None:
        mapped = ", ".join(sorted(str(m.target) for m in models))
        return [f.problem(where, f"references {ref.schema}.{ref.table}, which no mapping writes (mapped: {mapped})")]
    keys = [c.name for c in target.key_columns]
    if keys != [ref.column]:
        return [f.problem(where, f"references {ref.table}.{ref.column}, but the primary key of {ref.table} is "
                          f"({', '.join(keys)}); a foreign key must name the whole primary key")]
    want = next(c for c in target.key_columns).sql_type
    if want != column.sql_type:
        return [f.problem(where, f"column {column.name!r} is {column.sql_type.render()} but {ref.table}.{ref.column} "
                          f"is {want.render()}; use the same type")]
    return []


def _cross_file(models: Sequence[Mapping], files: dict[Path, LoadedFile]) -> list[Problem]:
    problems: list[Problem] = []
    writers: dict[tuple[str, str], Mapping] = {}
    names: dict[str, Mapping] = {}
    for m in models:
        f = files[m.path]
        tables = [(("target",), m.target)] + [(("children", i, "target"), c.target) for i, c in enumerate(m.children)]
        for where, t in tables:
            folded = (t.schema.lower(), t.table.lower())
            if folded in writers and writers[folded] is not m:
                problems.append(f.problem(where, f"table {t} is already written by mapping {writers[folded].name!r} "
                                          f"({writers[folded].path}); each table has one writer"))
            writers.setdefault(folded, m)
        for i, c in enumerate(m.columns):
            if c.references is not None:
                problems += _reference_problems(f, ("columns", i, "references"), c, models)
        if m.name in names:
            problems.append(f.problem(("name",), f"mapping name {m.name!r} is also used by {names[m.name].path}; "
                                      "set a distinct `name:`"))
        names.setdefault(m.name, m)
    return problems


def check_paths(paths: Iterable[Path]) -> tuple[list[Mapping], list[Problem]]:
    """Load and check every mapping file under ``paths``; return the models and every problem found."""
    files = {p: load_file(p) for p in mapping_files(paths)}
    models: list[Mapping] = []
    problems: list[Problem] = []
    for f in files.values():
        model, found = check_file(f)
        problems += found
        if model is not None:
            models.append(model)
    problems += _cross_file(models, files)
    return models, problems


def load_mappings(paths: Iterable[Path], tables: Sequence[str] = ()) -> list[Mapping]:
    """The mappings under ``paths`` (only those reading one of ``tables`` when given); MappingError if any
    file is invalid or no mapping matches."""
    paths = list(paths)
    for p in paths:
        if not p.exists():
            raise MappingError([Problem(str(p), 1, 1, "no such file or folder; pass --mappings PATH")])
    models, problems = check_paths(paths)
    if problems:
        raise MappingError(problems)
    if tables:
        chosen = [m for m in models if m.source_table in tables or m.name in tables or m.target.table in tables]
        unknown = [t for t in tables if not any(t in (m.source_table, m.name, m.target.table) for m in models)]
        if unknown:
            known = ", ".join(sorted({m.source_table for m in models}))
            raise MappingError([Problem(str(paths[0]), 1, 1, f"no mapping reads table {t!r} (mapped: {known})")
                                for t in unknown])
        return chosen
    if not models:
        raise MappingError([Problem(str(paths[0]), 1, 1, "no mapping files (*.yaml) found")])
    return models
