"""Property-based tests of the REST gateway against its own OpenAPI document (schemathesis).

A real ``trackd serve`` (gateway, gRPC server, the test run's database) answers the cases
schemathesis generates from ``GET /openapi.json``: for every operation a bounded number
of cases from a fixed seed (``derandomize``), valid and invalid, sent with a real key in
the operation's own credential scheme (Flywheel: the raw key with ``Auth-Type: api``).
Every response must be no server error (a 503 with ``Retry-After`` is an answer, not a
failure), and conform to the document: its status is documented, and so are its content
type, its headers and its body. And the document is as strict as the service: a request
it allows is not refused for its content (``positive_data_acceptance``: no 400 or 422),
and one it forbids is refused (``negative_data_rejection``). Two kinds of rule no JSON
Schema can state are the exception, each stated in the document's prose and checked
here the other way round (such a case must be refused): one relative to the clock
(Databuddy's timestamps at most 24 hours ahead, a time within years 1-9999 in UTC), one
comparing two fields (an audience rule's ``before`` after its ``since``), one on the
service's state (an evaluation's ``cursor`` must come from a previous page) and one on a
form field's content (Mixpanel's ``data`` is JSON messages). A positive
case's ``Idempotency-Key`` is made fresh, as a client makes one per request.

Rate limits are switched off for this server so that the cases reach the handlers, not
the 429 every dialect route documents.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.live import Live, create_website, live_trackd
from trackd.gateway.dialects.databuddy import DATABUDDY_MAX_FUTURE
from trackd.gateway.openapi.document import build_document
from trackd.gateway.settings import GatewaySettings

MAX_EXAMPLES = 12
RATE_LIMITS_OFF = {f"TRACKD_RATE_LIMIT_{name}": "off"
                   for name in ("VIBEFOLLOW", "FLYWHEEL", "DATABUDDY", "CUEFLOW",
                                 "SEGMENT", "POSTHOG", "AMPLITUDE",
                                 "MIXPANEL")}
# The contact the document's examples name, so that they reach a contact that exists.
SEED_CONTACT = {"externalId": "user-123", "email": "ada@example.com", "plan": "pro"}
WEBSITE_ORIGIN = "https://shop.example.com"


def not_a_server_error_but_retryable(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except a 503 telling the client when to retry."""
    if response.status_code == 503 and response.headers.get("retry-after"):
        return None
    return not_a_server_error(ctx, response, case)


def _utc(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def _out_of_range(text: str) -> bool:
    """A date-time outside years 1-9999 once converted to UTC."""
    moment = _utc(text)
    if moment is None:
        return False
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return True
    return False


def unstatable_violation(case: Any) -> str | None:
    """Which rule of the service a JSON Schema cannot state this valid case breaks: one
    relative to the clock or comparing two fields. The document states each in prose."""
    if case.media_type == FORM and not _mixpanel_data(case.body):
        return "a Mixpanel form whose data is not JSON (or base64 of JSON) messages"
    for value in _walk(case.body):
        if isinstance(value, str) and _out_of_range(value):
            return "a time outside years 1-9999 in UTC"
    path = case.operation.path
    if path == "/track":
        latest = datetime.now(UTC) + DATABUDDY_MAX_FUTURE
        items = case.body if isinstance(case.body, list) else [case.body]
        for item in items:
            stamp = item.get("timestamp") if isinstance(item, dict) else None
            if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
                try:
                    if datetime.fromtimestamp(stamp / 1000, UTC) > latest:
                        return "a timestamp over 24 hours ahead"
                except (OverflowError, OSError, ValueError):
                    return "a timestamp beyond any date"
            elif isinstance(stamp, str) and (moment := _utc(stamp)) is not None and \
                    moment > latest:
                return "a timestamp over 24 hours ahead"
    if path == "/api/v1/audiences/evaluate" and isinstance(case.body, dict) and \
            case.body.get("cursor") not in (None, ""):  # empty: the first page
        return "a cursor not from a previous page"
    if path in ("/api/v1/audiences/evaluate", "/api/v1/contacts/{externalId}/match"):
        for value in _walk(case.body):
            if isinstance(value, dict) and isinstance(value.get("since"), str) and \
                    isinstance(value.get("before"), str):
                since, before = _utc(value["since"]), _utc(value["before"])
                if since is not None and before is not None and since >= before:
                    return "an audience rule's before not after its since"
    return None


FORM = "application/x-www-form-urlencoded"


def _mixpanel_data(form: Any) -> bool:
    """Whether a form's ``data`` is what Mixpanel sends: JSON, or base64 of JSON, of one
    message (an object) or a non-empty array of them."""
    data = form.get("data") if isinstance(form, dict) else None
    if not isinstance(data, str):
        return False
    for text in (data, _unbase64(data)):
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            continue
        items = value if isinstance(value, list) else [value]
        if items and all(isinstance(item, dict) for item in items):
            return True
    return False


def _unbase64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for a case breaking a rule the document can
    state only in prose (:func:`unstatable_violation`); such a case must be refused."""
    if case.meta is not None and case.meta.generation.mode.is_positive and \
            unstatable_violation(case) is not None:
        assert 400 <= response.status_code < 500, (unstatable_violation(case), response.text)
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error_but_retryable, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, valid_data_accepted,
          negative_data_rejection]


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
    """The real key, in the scheme the operation's dialect takes: a header, or (PostHog,
    Amplitude, Mixpanel's /track and /engage) where the body carries it, a positive
    case's own key field set to it (a negative case keeps what it was generated with)."""
    schemes = {name for requirement in case.operation.definition.raw.get("security", [])
               for name in requirement}
    if "flywheelKey" in schemes:
        return {"Authorization": key, "Auth-Type": "api"}
    if schemes & {"segmentWriteKey", "mixpanelSecret"}:
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    if "bearer" in schemes:
        return {"Authorization": f"Bearer {key}"}
    if case.meta is not None and case.meta.generation.mode.is_positive and \
            case.media_type == "application/json":
        _key_in_body(case.body, key)
    return {}


def _key_in_body(body: Any, key: str) -> None:
    """The key where PostHog's and Amplitude's bodies carry it: the body's ``api_key``
    (PostHog: else the first event's)."""
    if isinstance(body, dict):
        body["api_key"] = key
    elif isinstance(body, list) and body and isinstance(body[0], dict):
        body[0]["api_key"] = key


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
    if case.meta is not None and case.meta.generation.mode.is_positive and \
            case.headers and "Idempotency-Key" in case.headers:
        # A key is for one request: a generated one repeats across cases with other
        # bodies, which the service rightly answers 422 idempotency_key_reuse.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
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
