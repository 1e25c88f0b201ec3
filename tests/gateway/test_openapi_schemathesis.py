"""Property-based tests of the REST gateway against its own OpenAPI document (schemathesis).

A real ``trackd serve`` (gateway, gRPC server, the test run's database) answers the cases
schemathesis generates from ``GET /openapi.json``: for every operation a bounded number
of cases from a fixed seed (``derandomize``), valid and invalid, sent with a real key in
the operation's own credential scheme. Every response must be no server error (a 503
with ``Retry-After`` is an answer, not a failure), and conform to the document: its
status is documented, and so are its content type, its headers and its body.

Rate limits are switched off for this server so that the cases reach the handlers, not
the 429 every dialect route documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi.document import build_document
from gateway.settings import GatewaySettings
from tests.gateway.live import Live, create_website, live_trackd

MAX_EXAMPLES = 20
RATE_LIMITS_OFF = {f"TRACKD_RATE_LIMIT_{name}": "off"
                   for name in ("VIBEFOLLOW", "FLYWHEEL", "DATABUDDY", "CUEFLOW")}
# The contact the document's examples name, so that they reach a contact that exists.
SEED_CONTACT = {"externalId": "user-123", "email": "ada@example.com", "plan": "pro"}
WEBSITE_ORIGIN = "https://shop.example.com"


def not_a_server_error_but_retryable(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except a 503 telling the client when to retry."""
    if response.status_code == 503 and response.headers.get("retry-after"):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [not_a_server_error_but_retryable, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_trackd(tmp_path_factory.mktemp("schemathesis"), RATE_LIMITS_OFF) as server:
        created = requests.post(f"{server.url}/api/v1/contacts", json=SEED_CONTACT,
                                headers={"Authorization": f"Bearer {server.key}"}, timeout=30)
        assert created.status_code == 201, created.text
        yield server


@pytest.fixture(scope="module")
def website_id(live: Live) -> str:
    """A website of the key's project, allowing ``WEBSITE_ORIGIN`` and server-side calls."""
    return create_website(live, WEBSITE_ORIGIN)


def credentials(case: Any, key: str) -> dict[str, str]:
    """The real key, in the scheme the operation's dialect takes."""
    schemes = {name for requirement in case.operation.definition.raw.get("security", [])
               for name in requirement}
    if "flywheelKey" in schemes:
        return {"Authorization": key, "Auth-Type": "api"}
    if "bearer" in schemes:
        return {"Authorization": f"Bearer {key}"}
    return {}


# The document a gateway with these settings serves (test_the_server_serves_it checks that
# it is the one served); loaded here, not from the server, so pytest can list its operations.
SETTINGS = GatewaySettings()
DOCUMENT = build_document(SETTINGS)
# The console's two streams never end while the key is good: they are tested by
# tests/gateway/test_console.py and the browser test instead.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(
    path_regex=r"^/console/api/(events|decisions)$")


def test_the_server_serves_it(live: Live) -> None:
    response = requests.get(f"{live.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case: Any, live: Live, website_id: str) -> None:
    headers = credentials(case, live.key)
    if case.query and "website_id" in case.query:
        # A generated UUID names no website: most cases would stop at 404.
        case.query["website_id"] = website_id
    response = case.call(base_url=live.url, headers=headers, timeout=30)
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_the_logs_name_no_key(live: Live) -> None:
    """Whatever schemathesis sent, no line the server wrote holds the key."""
    for log in (live.out, live.err):
        lines = log.read_text(errors="replace").splitlines()
        # The first start prints the development key once, on purpose; nothing else may.
        assert sum(live.key in line for line in lines) <= (1 if log == live.out else 0)
