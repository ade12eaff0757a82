"""Read a database secret from AWS Secrets Manager (the Lambda handler's way to get credentials).

The secret is the JSON shape RDS and the AWS replication blog use: ``username``, ``password``, ``host``, ``port``,
``dbname`` (``engine`` and other keys are ignored). The client is made here with the same session and retry
settings as the other AWS clients (`sources.aws`), so endpoints and credentials follow one chain.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ddbrepl.errors import ConfigError
from ddbrepl.sources.aws import AwsConfig, aws_errors, session


def secret_string(config: AwsConfig, secret_id: str) -> str:
    """GetSecretValue's SecretString (one network call; callers cache it)."""
    client: Any = session(config).client("secretsmanager", endpoint_url=config.endpoint_url)
    with aws_errors(f"GetSecretValue of {secret_id!r}"):
        response = client.get_secret_value(SecretId=secret_id)
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise ConfigError(f"secret {secret_id!r} has no SecretString", "store the credentials as a JSON string")
    return text


def database_url(secret: str, secret_id: str = "the secret") -> str:
    """A ``postgresql://`` URL from the secret's JSON; a ConfigError names a missing key (never a value)."""
    hint = "store a JSON object with username, password, host, port, dbname"
    try:
        doc = json.loads(secret)
    except ValueError:
        raise ConfigError(f"{secret_id} is not JSON", hint) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{secret_id} is not a JSON object", hint)
    missing = [k for k in ("username", "host") if not doc.get(k)]
    if missing:
        raise ConfigError(f"{secret_id} lacks {', '.join(missing)}", hint)
    user = quote(str(doc["username"]), safe="")
    password = doc.get("password")
    auth = user if not password else f"{user}:{quote(str(password), safe='')}"
    host = str(doc["host"])
    if host.startswith("/"):
        host = quote(host, safe="")  # a Unix socket directory, percent-encoded as libpq URIs require
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    port = int(doc.get("port") or 5432)
    dbname = quote(str(doc.get("dbname") or "postgres"), safe="")
    return f"postgresql://{auth}@{host}:{port}/{dbname}"
