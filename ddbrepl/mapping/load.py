"""Read a mapping file into plain data plus an index of where each value stands in the file.

No checks happen here beyond YAML syntax and duplicate keys: `mapping.check` reports everything else, using the
index to give every message a line and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ddbrepl.errors import Problem

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A parsed YAML document; ``index`` maps a JSON path to the 1-based (line, column) of its value."""

    path: Path
    doc: Any
    index: dict[JsonPath, tuple[int, int]]
    problems: tuple[Problem, ...] = ()
    key_index: dict[JsonPath, tuple[int, int]] | None = None
    """Where the key (not the value) of a mapping entry stands, for "unknown key" messages."""

    def where(self, path: JsonPath) -> tuple[int, int]:
        """The position of ``path``, or of its nearest located ancestor."""
        while path and path not in self.index:
            path = path[:-1]
        return self.index.get(path, (1, 1))

    def problem(self, path: JsonPath, message: str, *, at_key: bool = False) -> Problem:
        if at_key and self.key_index and path in self.key_index:
            line, col = self.key_index[path]
        else:
            line, col = self.where(path)
        return Problem(str(self.path), line, col, message)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, path: Path) -> None:
        self.loader = loader
        self.path = path
        self.index: dict[JsonPath, tuple[int, int]] = {}
        self.key_index: dict[JsonPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, where: JsonPath) -> Any:
        self.index[where] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | bool | float) or isinstance(key, bool):
                    key = str(key)
                if key in out:
                    line, col = _mark(key_node)
                    self.problems.append(
                        Problem(str(self.path), line, col, f"duplicate key {key!r}; keep one of them")
                    )
                self.key_index[(*where, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*where, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*where, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def load_file(path: Path) -> LoadedFile:
    """Parse one YAML file; a syntax error becomes a Problem on an empty document, never an exception."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedFile(path, None, {}, (Problem(str(path), 1, 1, f"cannot read the file: {exc}"),))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            empty = Problem(str(path), 1, 1, "the file is empty; a mapping starts with `version: 1`")
            return LoadedFile(path, None, {}, (empty,))
        builder = _Builder(loader, path)
        doc = builder.build(node, ())
        return LoadedFile(path, doc, builder.index, tuple(builder.problems), builder.key_index)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = f"{exc.problem or 'invalid YAML'}"
        if exc.context:
            started = exc.context_mark
            at = f" started at line {started.line + 1}, column {started.column + 1}" if started else ""
            reason += f" ({exc.context}{at})"
        return LoadedFile(path, None, {}, (Problem(str(path), line, col, f"YAML syntax error: {reason}"),))
    except yaml.YAMLError as exc:
        return LoadedFile(path, None, {}, (Problem(str(path), 1, 1, f"YAML error: {exc}"),))
    finally:
        loader.dispose()


def mapping_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand folders into their ``*.yaml`` / ``*.yml`` files (sorted); files are taken as given."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            yield path
