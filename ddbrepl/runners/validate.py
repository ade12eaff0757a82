"""`ddbrepl validate`: check mapping files offline (no AWS, no database) and report every problem."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ddbrepl.errors import Problem
from ddbrepl.mapping.check import check_paths
from ddbrepl.mapping.load import mapping_files
from ddbrepl.mapping.model import Mapping


@dataclass(frozen=True, slots=True)
class Report:
    files: tuple[Path, ...]
    mappings: tuple[Mapping, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.files)

    def render(self) -> str:
        if not self.files:
            return "no mapping files (*.yaml) found"
        if self.problems:
            lines = [str(p) for p in self.problems]
            bad = len({p.path for p in self.problems})
            lines.append(f"{len(self.problems)} problem(s) in {bad} of {len(self.files)} file(s)")
            return "\n".join(lines)
        lines = [f"{m.path}: {m.source_table} -> {m.target} ({len(m.columns)} columns"
                 + (f", {len(m.children)} child table(s)" if m.children else "") + ")" for m in self.mappings]
        lines.append(f"{len(self.files)} file(s) valid")
        return "\n".join(lines)

    def render_json(self) -> str:
        return json.dumps({
            "ok": self.ok,
            "files": [str(f) for f in self.files],
            "mappings": [{"name": m.name, "file": str(m.path), "source_table": m.source_table,
                          "target": str(m.target)} for m in self.mappings],
            "problems": [{"file": p.path, "line": p.line, "column": p.col, "message": p.message}
                         for p in self.problems],
        }, indent=2)


def validate(paths: Sequence[Path]) -> Report:
    """Check every mapping file under ``paths``; missing paths are problems too."""
    missing = [Problem(str(p), 1, 1, "no such file or folder") for p in paths if not p.exists()]
    present = [p for p in paths if p.exists()]
    files = tuple(mapping_files(present))
    models, problems = check_paths(files)
    return Report(files, tuple(models), tuple(missing + problems))
