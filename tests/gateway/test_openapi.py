"""The OpenAPI document is the gateway's: every route the app serves is in it and nothing
else, it is valid OpenAPI 3.1, and each limit it states is the one enforced.

Limits are checked two ways: the document's constraint against the constant that
enforces it (the gateway's own dialect constants and the server's in
``trackd/server/validation.py``), and, for a representative set, by sending a request at the
limit and one past it to the real gateway and server and seeing the first accepted and
the second refused.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from schemathesis.specs.openapi import definitions

from trackd.gateway.app import create_app
from trackd.gateway.dialects import cueflow_audiences, databuddy, flywheel
from trackd.gateway.openapi import limits
from trackd.gateway.openapi.document import build_document
from trackd.gateway.settings import GatewaySettings
from trackd.server import rate_limit_policy as ratelimit
from trackd.server import validation
from trackd.server.audiences import parsing as server_audiences
from trackd.server.services import audiences as audience_service
from trackd.storage import Store

Client = TestClient[Any, Any]
DOCUMENT = build_document()
SCHEMAS = DOCUMENT["components"]["schemas"]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _template(path: str) -> str:
    """A path with its parameters unnamed: aiohttp's and the document's names may differ."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route, without the HEAD aiohttp adds beside each GET and
    without the static files of the docs page (Swagger UI's assets, not an API)."""
    routes = set()
    for route in app.router.routes():
        if isinstance(route.resource, web.StaticResource) or route.resource is None:
            continue
        routes.add((route.method, _template(route.resource.canonical)))
    return {(method, path) for method, path in routes
            if not (method == "HEAD" and ("GET", path) in routes)}


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), _template(path))
            for path, item in document["paths"].items() for method in item
            if method in METHODS}


def test_every_route_the_app_serves_is_documented_and_nothing_else() -> None:
    served = served_routes(create_app())
    documented = documented_routes(DOCUMENT)
    assert served - documented == set(), (
        "routes the gateway serves that trackd/gateway/openapi/document.py does not describe")
    assert documented - served == set(), "documented routes the gateway does not serve"


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    errors = [str(error) for error in definitions.OPENAPI_31_VALIDATOR.iter_errors(DOCUMENT)]
    assert errors == []


def test_every_operation_has_an_id_responses_and_credentials() -> None:
    ids = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            ids.append(operation["operationId"])
            assert "security" in operation, (method, path)
            for status, response in operation["responses"].items():
                assert "X-Request-Id" in response["headers"], (method, path, status)
                if status in ("429", "503"):
                    assert response["headers"]["Retry-After"] == {
                        "$ref": "#/components/headers/Retry-After"}, (method, path, status)
    assert len(ids) == len(set(ids))


def test_the_shared_events_path_is_one_operation_with_both_shapes() -> None:
    operation = DOCUMENT["paths"]["/api/v1/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"oneOf": [{"$ref": "#/components/schemas/VibeFollowEvent"},
                              {"$ref": "#/components/schemas/CueflowEvent"}]}
    assert {"201", "202", "404", "422"} <= set(operation["responses"])
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
        "oneOf": [{"$ref": "#/components/schemas/VibeFollowError"},
                  {"$ref": "#/components/schemas/CueflowError"}]}


async def test_the_gateway_serves_the_document_for_its_settings() -> None:
    settings = GatewaySettings(max_body_bytes=1234)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1", port=0)) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == build_document(settings)
        assert "1234 bytes" in (await response.json())["info"]["description"]
        page = await client.get("/docs")
        assert page.status == 200
        assert page.content_type == "text/html"
        text = await page.text()
        for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', text):
            fetched = await client.get(asset)
            assert fetched.status == 200, asset
            assert len(await fetched.read()) > 0


# --- the document's limits are the enforced constants ---------------------------------------


def prop(schema_name: str, *path: str) -> Any:
    """A property's schema inside a component (through a nullable's anyOf)."""
    node: Any = SCHEMAS[schema_name]
    for name in path:
        node = node["properties"][name]
        if "anyOf" in node and node["anyOf"][-1] == {"type": "null"}:
            node = node["anyOf"][0]
    return node


def test_the_server_limits_the_document_restates_are_the_servers() -> None:
    for name in ("MAX_BATCH_EVENTS", "MAX_BATCH_USERS", "MAX_NAME_CHARS", "MAX_ID_CHARS",
                 "MAX_PROPERTY_KEYS", "MAX_PROPERTIES_BYTES", "MAX_PROPERTY_DEPTH",
                 "MAX_PROPERTY_KEY_CHARS", "MAX_IDEMPOTENCY_KEY_CHARS", "MAX_EMAIL_CHARS",
                 "MAX_PHONE_CHARS", "MAX_TRAIT_KEYS", "PROFILE_LIMITS"):
        assert getattr(limits, name) == getattr(validation, name), name
    # The same in Python, whose \s already holds what SPACE adds for ECMA-262's.
    emails = ["a@b", "a b@c", "\x1dn@x", "a@b\x85", "@b", "a@", "a@@b", "\ufeffa@b", "\x07@\x07"]
    assert [bool(re.match(limits.EMAIL_PATTERN, text)) for text in emails] == \
        [bool(validation._EMAIL.match(text)) for text in emails]
    assert limits.MAX_AUDIENCE_GROUPS == server_audiences.MAX_GROUPS
    assert limits.MAX_RULES_PER_GROUP == server_audiences.MAX_RULES_PER_GROUP
    assert limits.DEFAULT_PAGE_SIZE == audience_service.DEFAULT_PAGE_SIZE
    assert cueflow_audiences.MAX_LIMIT == audience_service.MAX_PAGE_SIZE
    assert {name: limits.DEFAULT_RATE_LIMITS[name] for name in limits.DEFAULT_RATE_LIMITS} == {
        name: None if limit is None else (limit.requests, limit.seconds)
        for name, limit in ratelimit.DEFAULT_LIMITS.items() if name != ratelimit.GRPC_SCOPE}


def test_the_documented_constraints_are_the_constants() -> None:
    assert prop("VibeFollowBatch", "events")["maxItems"] == validation.MAX_BATCH_EVENTS
    assert prop("VibeFollowUsers", "users")["maxItems"] == validation.MAX_BATCH_USERS
    for schema, field in (("VibeFollowEvent", "name"), ("CueflowEvent", "eventKey"),
                          ("FlywheelEvent", "event")):
        assert prop(schema, field)["maxLength"] == validation.MAX_NAME_CHARS, schema
    for schema, field in (("VibeFollowEvent", "external_user_id"),
                          ("VibeFollowUser", "external_user_id"),
                          ("CueflowEvent", "externalId"), ("FlywheelEvent", "user_id")):
        assert prop(schema, field)["maxLength"] == validation.MAX_ID_CHARS, schema
    for schema in ("VibeFollowEvent", "CueflowEvent", "FlywheelEvent"):
        properties = prop(schema, "properties")
        assert properties["maxProperties"] == validation.MAX_PROPERTY_KEYS
        assert properties["propertyNames"]["maxLength"] == validation.MAX_PROPERTY_KEY_CHARS
    assert prop("VibeFollowUser", "traits")["maxProperties"] == validation.MAX_TRAIT_KEYS
    assert prop("CueflowNewContact", "email")["maxLength"] == validation.MAX_EMAIL_CHARS
    assert prop("CueflowNewContact", "phone")["maxLength"] == validation.MAX_PHONE_CHARS
    assert prop("CueflowNewContact", "avatarUrl")["maxLength"] == \
        validation.PROFILE_LIMITS["avatar_url"]
    assert prop("FlywheelEvent", "event")["pattern"] == flywheel.NAME_PATTERN.pattern
    db = "DatabuddyEvent"
    assert prop(db, "name")["maxLength"] == databuddy.DATABUDDY_MAX_NAME_CHARS
    assert prop(db, "namespace")["maxLength"] == databuddy.DATABUDDY_MAX_NAMESPACE_CHARS
    assert prop(db, "source")["maxLength"] == databuddy.DATABUDDY_MAX_SOURCE_CHARS
    for field in ("anonymousId", "sessionId", "eventId", "profileId"):
        assert prop(db, field)["maxLength"] == databuddy.DATABUDDY_MAX_ID_CHARS, field
    assert prop(db, "properties")["maxProperties"] == databuddy.DATABUDDY_MAX_PROPERTY_KEYS
    assert prop(db, "properties")["propertyNames"]["maxLength"] == \
        databuddy.DATABUDDY_MAX_PROPERTY_KEY_CHARS
    groups = prop("Audience", "groups")
    assert groups["maxItems"] == server_audiences.MAX_GROUPS
    assert groups["items"]["properties"]["rules"]["maxItems"] == \
        server_audiences.MAX_RULES_PER_GROUP
    assert SCHEMAS["AudienceEvaluate"]["properties"]["limit"]["maximum"] == \
        audience_service.MAX_PAGE_SIZE
    assert prop("AudienceEventRule", "op")["enum"] == list(cueflow_audiences.EVENT_OPS)
    assert prop("AudiencePropertyRule", "op")["enum"] == list(cueflow_audiences.PROPERTY_OPS)
    idempotency = DOCUMENT["paths"]["/api/v1/events/batch"]["post"]["parameters"][0]
    assert idempotency["schema"]["maxLength"] == validation.MAX_IDEMPOTENCY_KEY_CHARS


# --- at the limit and one past it, against the real gateway and server --------------------


@pytest.fixture
async def contact(http: Client, key: str) -> str:
    response = await http.post("/api/v1/contacts", json={"externalId": "user-123",
                                                         "email": "ada@example.com"},
                               headers=bearer(key))
    assert response.status == 201
    return "user-123"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def vibefollow_event(**properties: Any) -> dict[str, Any]:
    return {"external_user_id": "usr_42", "name": "limit_checked", "properties": properties}


def keys(count: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(count)}


async def statuses(http: Client, method: str, path: str, bodies: list[Any],
                   headers: dict[str, str], **kwargs: Any) -> list[int]:
    answers = []
    for body in bodies:
        response = await http.request(method, path, json=body, headers=headers, **kwargs)
        answers.append(response.status)
    return answers


async def test_vibefollow_batch_size_and_property_keys(http: Client, key: str) -> None:
    most = prop("VibeFollowBatch", "events")["maxItems"]
    batches = [{"events": [vibefollow_event()] * count} for count in (most, most + 1)]
    assert await statuses(http, "POST", "/api/v1/events/batch", batches, bearer(key)) == \
        [202, 422]
    most = prop("VibeFollowEvent", "properties")["maxProperties"]
    events = [vibefollow_event(**keys(count)) for count in (most, most + 1)]
    assert await statuses(http, "POST", "/api/v1/events", events, bearer(key)) == [202, 422]


async def test_vibefollow_idempotency_key_length(http: Client, key: str) -> None:
    operation = DOCUMENT["paths"]["/api/v1/events/batch"]["post"]
    most = operation["parameters"][0]["schema"]["maxLength"]
    answers = []
    for length in (most, most + 1):
        response = await http.post("/api/v1/events/batch",
                                   json={"events": [vibefollow_event()]},
                                   headers={**bearer(key), "Idempotency-Key": "k" * length})
        answers.append(response.status)
    assert answers == [202, 422]


async def test_flywheel_name_pattern_and_name_length(http: Client, key: str) -> None:
    headers = {"Authorization": key, "Auth-Type": "api"}
    pattern = re.compile(prop("FlywheelEvent", "event")["pattern"])
    most = prop("FlywheelEvent", "event")["maxLength"]
    names = ["sign-up_2", "sign up", "a" * most, "a" * (most + 1)]
    assert [bool(pattern.match(name)) for name in names[:2]] == [True, False]
    bodies = [{"event": {"event": name, "user_id": "u1"}} for name in names]
    assert await statuses(http, "POST", "/v1/events", bodies, headers) == [200, 400, 200, 400]


async def test_databuddy_name_length_and_property_bounds(http: Client, key: str) -> None:
    name = prop("DatabuddyEvent", "name")
    properties = prop("DatabuddyEvent", "properties")
    bodies = [
        {"name": "n" * name["maxLength"]}, {"name": "n" * (name["maxLength"] + 1)},
        {"name": "n", "properties": keys(properties["maxProperties"])},
        {"name": "n", "properties": keys(properties["maxProperties"] + 1)},
        {"name": "n", "properties": {"k" * properties["propertyNames"]["maxLength"]: 1}},
        {"name": "n", "properties": {"k" * (properties["propertyNames"]["maxLength"] + 1): 1}},
        {"name": "n", "namespace": "s" * prop("DatabuddyEvent", "namespace")["maxLength"]},
        {"name": "n", "namespace": "s" * (prop("DatabuddyEvent", "namespace")["maxLength"] + 1)},
    ]
    assert await statuses(http, "POST", "/track", bodies, bearer(key)) == \
        [200, 400] * 4


async def test_cueflow_email_length_and_flat_properties(
        http: Client, key: str, contact: str) -> None:
    most = prop("CueflowNewContact", "email")["maxLength"]
    domain = "@example.com"
    emails = ["a" * (most - len(domain)) + domain, "a" * (most + 1 - len(domain)) + domain]
    bodies = [{"email": email, "externalId": f"c{i}"} for i, email in enumerate(emails)]
    assert await statuses(http, "POST", "/api/v1/contacts", bodies, bearer(key)) == [201, 400]
    assert prop("CueflowEvent", "properties")["additionalProperties"] == {
        "type": ["string", "number", "boolean"]}
    events = [{"externalId": contact, "eventKey": "k", "properties": {"a": 1, "b": "x"}},
              {"externalId": contact, "eventKey": "k", "properties": {"a": {"nested": 1}}}]
    assert await statuses(http, "POST", "/api/v1/events", events, bearer(key)) == [201, 400]


async def test_audience_limit_operators_and_groups(
        http: Client, key: str, contact: str) -> None:
    most = SCHEMAS["AudienceEvaluate"]["properties"]["limit"]["maximum"]
    rule = {"event": "x", "op": prop("AudienceEventRule", "op")["enum"][0]}
    audience = {"groups": [{"rules": [rule]}]}
    bodies = [{**audience, "limit": most}, {**audience, "limit": most + 1},
              {"groups": [{"rules": [{"event": "x", "op": "is_set"}]}]}]
    assert await statuses(http, "POST", "/api/v1/audiences/evaluate", bodies, bearer(key)) == \
        [200, 400, 400]
    groups = prop("Audience", "groups")["maxItems"]
    rules = prop("Audience", "groups")["items"]["properties"]["rules"]["maxItems"]
    bodies = [{"groups": [{"rules": [rule] * rules}] * groups},
              {"groups": [{"rules": [rule]}] * (groups + 1)},
              {"groups": [{"rules": [rule] * (rules + 1)}]}]
    assert await statuses(http, "POST", f"/api/v1/contacts/{contact}/match", bodies,
                          bearer(key)) == [200, 400, 400]


async def test_users_bulk_size(http: Client, key: str, store: Store) -> None:
    most = prop("VibeFollowUsers", "users")["maxItems"]
    bodies = [{"users": [{"external_user_id": f"u{uuid.uuid4().hex[:6]}"}] * count}
              for count in (most, most + 1)]
    assert await statuses(http, "POST", "/api/v1/users/bulk", bodies, bearer(key)) == \
        [200, 422]


# --- what schemathesis found -------------------------------------------------------------


async def test_an_idempotency_key_that_is_not_utf8_is_a_422_not_a_500(
        http: Client, key: str, store: Store) -> None:
    """Found by schemathesis: header bytes that are not UTF-8 reached the RPC message."""
    body = b'{"external_user_id": "usr_42", "name": "user_signed_up"}'
    reader, writer = await asyncio.open_connection(http.host, http.port)
    try:
        writer.write(b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n"
                     b"Idempotency-Key: \xe9t\xe9\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 422 "), head
    assert orjson.loads(payload) == {"errors": [{
        "code": "validation_failed", "message": "Idempotency-Key must be printable UTF-8 text",
        "field": "Idempotency-Key"}]}
    assert await store.db["events"].count_documents({}) == 0
