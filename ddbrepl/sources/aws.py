"""The only place boto3 clients are made, and where botocore errors become ddbrepl errors.

Credentials come from the standard boto3 chain (environment, shared config and credentials files, profiles, SSO,
assumed roles, container and instance metadata). The endpoint is ``AwsConfig.endpoint_url`` when given, else
whatever boto3 resolves — which honours ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` and ``AWS_ENDPOINT_URL_S3`` variables.

Retries are botocore's: ``adaptive`` mode by default (standard retries plus a client-side rate limiter that slows
down on throttling). Its rate limiter lives in the client object, so threads should share one client per service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

from ddbrepl.errors import ConfigError, DdbreplError, Fatal, Retriable, SourceError
from ddbrepl.sources import fastpath

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

RetryMode = Literal["legacy", "standard", "adaptive"]

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    }
)
"""Error codes that mean "too fast": retriable once botocore's own retries are spent."""

TRANSIENT_CODES = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException"}
)
MISSING_CODES = frozenset({"ResourceNotFoundException", "TableNotFoundException", "NoSuchBucket", "NoSuchKey"})
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "AccessDenied",
        "MissingAuthenticationTokenException",
    }
)


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """How to reach AWS. Every field left at None defers to the standard boto3 chain."""

    endpoint_url: str | None = None
    """One endpoint for DynamoDB, Streams and S3 (moto, LocalStack); None: boto3's resolution and env variables."""
    region: str | None = None
    profile: str | None = None
    retry_mode: RetryMode = "adaptive"
    max_attempts: int = 10
    """Total attempts per call, the first one included (botocore's ``total_max_attempts``)."""
    fast_path: bool = True
    """Parse Scan and GetRecords bodies with orjson (see :mod:`ddbrepl.sources.fastpath`)."""
    max_pool_connections: int = 32
    """HTTP connections per client; parallel scan segments and shard readers share one client."""
    read_timeout: float = 60.0
    connect_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AwsClients:
    """The three clients ddbrepl uses, sharing one boto3 session."""

    dynamodb: DynamoDBClient
    streams: DynamoDBStreamsClient
    s3: S3Client


def _botocore_config(config: AwsConfig) -> Config:
    return Config(
        retries={"mode": config.retry_mode, "total_max_attempts": config.max_attempts},
        max_pool_connections=config.max_pool_connections,
        read_timeout=config.read_timeout,
        connect_timeout=config.connect_timeout,
    )


def session(config: AwsConfig) -> boto3.Session:
    """Open a boto3 session for the configured profile and region (no network I/O)."""
    try:
        return boto3.Session(profile_name=config.profile, region_name=config.region)
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS profile {config.profile!r} is not defined",
            hint="check ~/.aws/config or pass another --profile / AWS_PROFILE",
        ) from exc


def _client(config: AwsConfig, service: str, boto_session: boto3.Session | None) -> Any:
    boto_session = boto_session or session(config)
    try:
        client = boto_session.client(service, endpoint_url=config.endpoint_url, config=_botocore_config(config))
    except NoRegionError as exc:
        raise ConfigError(
            "no AWS region configured",
            hint="set AWS_REGION (or AWS_DEFAULT_REGION), a region in the profile, or --region",
        ) from exc
    if config.fast_path:
        fastpath.install(client)
    log.debug("created %s client (endpoint %s)", service, client.meta.endpoint_url)
    return client


def dynamodb_client(config: AwsConfig, boto_session: boto3.Session | None = None) -> DynamoDBClient:
    """A DynamoDB client; Scan takes the fast response path when ``config.fast_path``."""
    client: DynamoDBClient = _client(config, "dynamodb", boto_session)
    return client


def streams_client(config: AwsConfig, boto_session: boto3.Session | None = None) -> DynamoDBStreamsClient:
    """A DynamoDB Streams client; GetRecords takes the fast response path when ``config.fast_path``."""
    client: DynamoDBStreamsClient = _client(config, "dynamodbstreams", boto_session)
    return client


def s3_client(config: AwsConfig, boto_session: boto3.Session | None = None) -> S3Client:
    """An S3 client (for DynamoDB exports)."""
    client: S3Client = _client(config, "s3", boto_session)
    return client


def clients(config: AwsConfig) -> AwsClients:
    """Create the DynamoDB, Streams and S3 clients from one session. Clients are thread-safe; share them."""
    boto_session = session(config)
    return AwsClients(
        dynamodb=dynamodb_client(config, boto_session),
        streams=streams_client(config, boto_session),
        s3=s3_client(config, boto_session),
    )


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (``"ThrottlingException"``…), else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _status(exc: ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status or 0)


def translate(exc: Exception, action: str) -> DdbreplError:
    """Turn a botocore exception into the ddbrepl error whose type tells the runner what to do.

    ``action`` names what was attempted, with its subject ("Scan of table 'Orders'"). Throttling and 5xx reach us
    only after botocore's own retries are spent, so they are :class:`Retriable` (back off, redo the same unit).
    """
    if isinstance(exc, DdbreplError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc) or "Unknown"
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        if code in THROTTLING_CODES:
            return Retriable(
                f"{action} was throttled ({code}) after botocore's retries",
                hint="lower --segments / --max-rcu, or raise the table's read capacity",
            )
        if code in TRANSIENT_CODES or _status(exc) >= 500:
            return Retriable(f"{action} failed on the service side ({code}: {message})")
        if code in MISSING_CODES:
            return SourceError(
                f"{action}: {code}: {message}",
                hint="check the table name, the region and the endpoint (and that the stream is enabled)",
            )
        if code in CREDENTIAL_CODES:
            return ConfigError(
                f"{action} was refused: {code}: {message}",
                hint="check the AWS credentials and their permissions for this table",
            )
        return Fatal(f"{action} failed: {code}: {message}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | TokenRetrievalError | SSOError):
        return ConfigError(
            f"{action}: no usable AWS credentials ({exc})",
            hint="configure the standard chain: AWS_PROFILE, `aws sso login`, env keys or an instance role",
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return Retriable(f"{action}: cannot reach the endpoint ({exc})")
    if isinstance(exc, BotoCoreError):
        return Fatal(f"{action} failed: {exc}")
    return Fatal(f"{action} failed: {type(exc).__name__}: {exc}")


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate botocore exceptions raised inside the block (see :func:`translate`)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, action) from exc
