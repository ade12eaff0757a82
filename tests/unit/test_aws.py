"""sources.aws and sources.fastpath without a network: client configuration, error translation, key forms."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from ddbrepl.errors import ConfigError, Fatal, Retriable, SourceError
from ddbrepl.sources.aws import AwsConfig, clients, translate
from ddbrepl.sources.fastpath import json_key, wire_key
from tests.fakes.streams import client_error


def test_clients_honour_the_endpoint_region_and_retry_settings() -> None:
    made = clients(AwsConfig(endpoint_url="http://127.0.0.1:1", region="eu-west-3", max_attempts=4))
    for client in (made.dynamodb, made.streams, made.s3):
        assert client.meta.endpoint_url == "http://127.0.0.1:1"
        assert client.meta.region_name == "eu-west-3"
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}


def test_the_standard_endpoint_variables_are_honoured_without_an_explicit_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:3")
    made = clients(AwsConfig())
    assert made.dynamodb.meta.endpoint_url == "http://127.0.0.1:2"
    assert made.streams.meta.endpoint_url == "http://127.0.0.1:3"


def test_an_unknown_profile_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="no-such-profile"):
        clients(AwsConfig(profile="no-such-profile"))


def _emit_scan_body(fast: bool, status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    client = clients(AwsConfig(endpoint_url="http://127.0.0.1:1", fast_path=fast)).dynamodb
    response = {"status_code": status, "headers": {}, "body": b'{"Items": [{"b": {"B": "AAE="}}], "Count": 1}'}
    custom: dict[str, Any] = {}
    client.meta.events.emit(
        "before-parse.dynamodb.Scan",
        operation_model=client.meta.service_model.operation_model("Scan"),
        response_dict=response,
        customized_response_dict=custom,
    )
    return response, custom


def test_the_fast_path_parses_successful_scan_bodies_and_leaves_botocore_an_empty_object() -> None:
    response, custom = _emit_scan_body(fast=True, status=200)
    assert custom == {"Items": [{"b": {"B": "AAE="}}], "Count": 1}
    assert response["body"] == b"{}"


def test_the_fast_path_leaves_error_bodies_and_plain_clients_alone() -> None:
    for fast, status in ((True, 400), (False, 200)):
        response, custom = _emit_scan_body(fast=fast, status=status)
        assert custom == {}
        assert response["body"].startswith(b'{"Items"')


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ProvisionedThroughputExceededException", Retriable),
        ("ThrottlingException", Retriable),
        ("RequestLimitExceeded", Retriable),
        ("LimitExceededException", Retriable),
        ("InternalServerError", Retriable),
        ("ResourceNotFoundException", SourceError),
        ("UnrecognizedClientException", ConfigError),
        ("AccessDeniedException", ConfigError),
        ("ValidationException", Fatal),
    ],
)
def test_client_errors_translate_by_code(code: str, kind: type[Exception]) -> None:
    error = translate(client_error(code, "Scan"), "Scan of 'T'")
    assert type(error) is kind
    assert "Scan of 'T'" in str(error)


def test_an_unmodelled_5xx_is_retriable() -> None:
    assert isinstance(translate(client_error("Weird", "Scan", status=503), "Scan"), Retriable)


def test_transport_and_credential_errors_translate() -> None:
    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x"), "Scan"), Retriable)
    assert isinstance(translate(ReadTimeoutError(endpoint_url="http://x"), "Scan"), Retriable)
    assert isinstance(translate(NoCredentialsError(), "Scan"), ConfigError)


def test_keys_convert_between_the_wire_and_json_forms() -> None:
    raw = b"\x00\xffkey"
    text = base64.b64encode(raw).decode()
    as_bytes = {"pk": {"B": raw}, "sk": {"N": "1"}}
    as_text = {"pk": {"B": text}, "sk": {"N": "1"}}
    assert json_key(as_bytes) == as_text
    assert json_key(as_text) == as_text
    assert wire_key(as_text) == as_bytes
    assert wire_key(as_bytes) == as_bytes
    assert wire_key(json_key(as_bytes)) == as_bytes


def test_the_fast_path_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    assert gc.isenabled()
    _emit_scan_body(fast=True, status=200)
    assert gc.isenabled()
    gc.disable()
    try:
        _, custom = _emit_scan_body(fast=True, status=200)
        assert custom["Count"] == 1 and not gc.isenabled()
    finally:
        gc.enable()
