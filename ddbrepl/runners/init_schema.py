"""`ddbrepl init-schema`: create or evolve target tables and the control schema, or print the plan."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ddbrepl import ddl
from ddbrepl.db import connect, describe
from ddbrepl.errors import SchemaDrift
from ddbrepl.mapping.check import load_mappings
from ddbrepl.settings import Settings
from ddbrepl.state import migrate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    statements: tuple[str, ...]
    applied: bool
    notes: tuple[str, ...] = ()
    target: str = ""

    def render(self) -> str:
        if not self.statements:
            return f"nothing to do: {self.target} matches the mappings" if self.target else "nothing to do"
        body = ddl.render(self.statements)
        notes = "".join(f"-- note: {n}\n" for n in self.notes)
        if self.applied:
            return f"{notes}applied {len(self.statements)} statement(s) to {self.target}"
        return notes + body


def init_schema(settings: Settings, *, tables: tuple[str, ...] = (), dry_run: bool = False,
                allow_destructive: bool = False) -> Outcome:
    """Plan against the live database when there is one (offline for a dry run without one); apply the plan and
    pending control-schema migrations in one transaction; refuse destructive changes without consent."""
    mappings = load_mappings(settings.mappings, tables)
    if settings.database_url is None and dry_run:
        stmts = migrate.statements(migrate.available()) + list(ddl.plan_offline(mappings).statements)
        return Outcome(tuple(stmts), applied=False)
    url = settings.require_database()
    with connect(url) as conn:
        plan = ddl.plan_live(mappings, url)
        if plan.refused and not allow_destructive:
            raise SchemaDrift(
                "refusing destructive schema changes:\n  " + "\n  ".join(plan.refused),
                "re-run with --allow-destructive to apply them (data in changed columns is converted or lost), "
                "or change the mapping back",
            )
        pending = migrate.pending(conn)
        stmts = migrate.statements(pending) + list(plan.statements)
        if allow_destructive:
            stmts += list(plan.destructive)
        if dry_run or not stmts:
            return Outcome(tuple(stmts), applied=False, notes=plan.notes, target=describe(url))
        with conn.transaction():
            migrate.apply(conn)
            for stmt in [*plan.statements, *(plan.destructive if allow_destructive else ())]:
                conn.execute(stmt.encode())
        log.info("init-schema applied %d statement(s)", len(stmts))
        return Outcome(tuple(stmts), applied=True, notes=plan.notes, target=describe(url))
