"""The exception tree. The type decides what a runner does: stop, retry, or dead-letter.

Every message says what happened, with the values involved, and what to do next (`hint`).
"""

from __future__ import annotations

from dataclasses import dataclass


class DdbreplError(Exception):
    """Base of every error ddbrepl raises on purpose; the CLI prints it and exits 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")


class Fatal(DdbreplError):
    """Stop: retrying cannot help (bad configuration, data loss, a refused schema change)."""


class Retriable(DdbreplError):
    """Back off and retry the same unit of work (throttling, a lost connection)."""


class ConfigError(Fatal):
    """Settings or command-line values that cannot work (missing database URL, bad endpoint)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a mapping file, located to the character."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class MappingError(Fatal):
    """One or more mapping files are invalid; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "invalid mapping")


class SchemaDrift(Fatal):
    """The live database differs from the mappings in a way init-schema refuses to change alone."""


class DataLoss(Fatal):
    """Stream records we have not applied were trimmed: only a new backfill can repair the table."""


class LeaseLost(Retriable):
    """Another worker took this shard's lease; the batch was rolled back and the shard dropped."""


class SourceError(Fatal):
    """A source (table, stream, export) is missing, disabled or malformed."""
