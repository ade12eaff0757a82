"""What `ddbrepl verify` found: drift per mapping (counts exact, keys capped), as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ddbrepl.runners.events import plain

REPORT_KEYS = 100
"""Keys kept per kind of drift and mapping (the counts stay exact)."""


@dataclass
class MappingReport:
    """Drift found for one mapping; ``*_keys`` hold at most REPORT_KEYS keys each, the counts are exact."""

    mapping: str
    target: str
    key_columns: tuple[str, ...]
    compared: int = 0
    missing: int = 0
    different: int = 0
    extra: int = 0
    unconvertible: int = 0
    in_flux: int = 0
    """Rows written (by the stream) after verify began: compared against nothing stable, neither drift nor
    repaired."""
    extra_sampled: int | None = None
    """With --sample: rows of the target sampled and looked up in DynamoDB to find extra rows."""
    extra_unchecked: str | None = None
    """With --sample: why extra rows could not be sampled for this mapping."""
    repaired_upserts: int = 0
    repaired_deletes: int = 0
    missing_keys: list[dict[str, Any]] = field(default_factory=list)
    different_keys: list[dict[str, Any]] = field(default_factory=list)
    extra_keys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return self.missing + self.different + self.extra

    def key(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.key_columns, plain(list(values)), strict=True))


@dataclass
class VerifyReport:
    table: str
    items: int = 0
    seconds: float = 0.0
    sampled: bool = False
    repair: bool = False
    mappings: list[MappingReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No drift, or (with --repair) every drifted row written back."""
        if not self.repair:
            return all(m.drift == 0 for m in self.mappings)
        return all(m.repaired_upserts + m.repaired_deletes >= m.drift for m in self.mappings)

    def render(self) -> str:
        kind = f"sample of {self.items:,} items" if self.sampled else f"{self.items:,} items"
        lines = [f"verify {self.table}: {kind} scanned in {self.seconds:.1f}s"]
        for m in self.mappings:
            state = ("in sync" if m.drift == 0
                     else f"DRIFT: {m.missing} missing, {m.different} different, {m.extra} extra")
            lines.append(f"  {m.mapping} -> {m.target}: {m.compared:,} rows compared, {state}"
                         + (f", {m.unconvertible} unconvertible (see `ddbrepl dlq list`)" if m.unconvertible else "")
                         + (f", {m.in_flux} changed by the stream while verifying (not compared)"
                            if m.in_flux else ""))
            for label, keys in (("missing", m.missing_keys), ("different", m.different_keys),
                                ("extra", m.extra_keys)):
                for k in keys:
                    cols = k.get("columns")
                    key = {c: k[c] for c in m.key_columns}
                    lines.append(f"    {label:<9} {key}" + (f" columns {', '.join(cols)}" if cols else ""))
            if m.extra_sampled is not None:
                lines.append(f"    extra rows: {m.extra_sampled:,} rows of {m.target} sampled and looked up")
            if m.extra_unchecked:
                lines.append(f"    extra rows not sampled: {m.extra_unchecked}")
            shown = len(m.missing_keys) + len(m.different_keys) + len(m.extra_keys)
            if shown < m.drift:
                lines.append(f"    … and {m.drift - shown} more")
            if self.repair and m.drift:
                lines.append(f"    repaired: {m.repaired_upserts} upserted, {m.repaired_deletes} deleted")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table, "items": self.items, "seconds": round(self.seconds, 3), "sampled": self.sampled,
            "ok": self.ok, "repair": self.repair,
            "mappings": [{
                "mapping": m.mapping, "target": m.target, "compared": m.compared, "missing": m.missing,
                "different": m.different, "extra": m.extra, "unconvertible": m.unconvertible,
                "in_flux": m.in_flux, "extra_sampled": m.extra_sampled, "extra_unchecked": m.extra_unchecked,
                "repaired": {"upserts": m.repaired_upserts, "deletes": m.repaired_deletes},
                "missing_keys": m.missing_keys, "different_keys": m.different_keys, "extra_keys": m.extra_keys,
            } for m in self.mappings],
        }
