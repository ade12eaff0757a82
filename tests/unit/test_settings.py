"""Settings resolution and password masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbrepl.db import describe, mask
from ddbrepl.errors import ConfigError
from ddbrepl.settings import Settings, resolve


def test_flags_win_over_environment() -> None:
    env = {"DDBREPL_DATABASE_URL": "postgresql://a/one", "DATABASE_URL": "postgresql://b/two",
           "AWS_REGION": "eu-west-1", "DDBREPL_MAPPINGS": "x:y"}
    s = resolve(database_url="postgresql://flag/three", region="us-east-2", env=env)
    assert (s.database_url, s.region) == ("postgresql://flag/three", "us-east-2")
    s = resolve(env=env)
    assert (s.database_url, s.region, s.mappings) == ("postgresql://a/one", "eu-west-1", (Path("x"), Path("y")))
    s = resolve(env={"DATABASE_URL": "postgresql://b/two"})
    assert (s.database_url, s.region, s.mappings) == ("postgresql://b/two", None, (Path("mappings"),))


def test_missing_database_says_where_to_set_it() -> None:
    with pytest.raises(ConfigError, match="no database URL") as err:
        Settings().require_database()
    assert err.value.hint is not None and "DDBREPL_DATABASE_URL" in err.value.hint


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://me:s3cr3t@db:5432/app", "postgresql://me:***@db:5432/app"),
    ("host=db password=s3cr3t dbname=app", "host=db password=*** dbname=app"),
    ("host=db password='a b c' dbname=app", "host=db password=*** dbname=app"),
    ("postgresql://db/app", "postgresql://db/app"),
])
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask(url) == masked
    assert "s3cr3t" not in describe(url)
