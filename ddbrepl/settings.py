"""Resolved settings: command-line flags first, then environment variables. Nothing is read at import time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ddbrepl.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Settings:
    """What every command may need; the database URL and AWS endpoint stay unset until a command needs them."""

    mappings: tuple[Path, ...] = (Path("mappings"),)
    database_url: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    verbose: int = 0
    log_format: str = "text"

    def require_database(self) -> str:
        """The database URL, or a ConfigError that says where to set it."""
        if not self.database_url:
            raise ConfigError("no database URL", "pass --database-url or set DDBREPL_DATABASE_URL (or DATABASE_URL)")
        return self.database_url

    def with_mappings(self, paths: tuple[Path, ...]) -> Settings:
        return replace(self, mappings=paths) if paths else self


def resolve(
    *,
    mappings: tuple[Path, ...] = (),
    database_url: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    verbose: int = 0,
    log_format: str = "text",
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over ``DDBREPL_DATABASE_URL``, which wins over ``DATABASE_URL``; ``DDBREPL_MAPPINGS`` may name
    the mappings folder. AWS settings left unset fall through to boto3's own chain (AWS_* variables, profiles)."""
    env = os.environ if env is None else env
    url = database_url or env.get("DDBREPL_DATABASE_URL") or env.get("DATABASE_URL") or None
    paths = mappings or tuple(Path(p) for p in env.get("DDBREPL_MAPPINGS", "mappings").split(os.pathsep) if p)
    return Settings(
        mappings=paths,
        database_url=url,
        endpoint_url=endpoint_url or env.get("DDBREPL_ENDPOINT_URL") or None,
        region=region or env.get("AWS_REGION") or None,  # boto3 itself reads only AWS_DEFAULT_REGION
        profile=profile,
        verbose=verbose,
        log_format=log_format,
    )
