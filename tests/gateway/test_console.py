"""``/console`` over real HTTP on a real gateway and server: the page and its assets with
their security headers, the key only from the ``Authorization`` header with clear JSON
errors, the overview, and the two streams translating Subscribe and WatchDecisions (an
event sent through a dialect arrives with its request id; a refusal with the status the
dialect answered, its reason and field)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from typing import Any

import grpc
import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from tests.helpers import KeyFactory
from trackd.gateway.console import STATIC
from trackd.gateway.console_streams import end_streams, http_status
from trackd.gateway.front_door import PAGE_CSP
from trackd.server.app import ServerConfig, TrackdServer
from trackd.server.auth import ALL_SCOPES, DEFAULT_SCOPES, SCOPE_EVENTS_READ
from trackd.server.properties import KEY_RULE
from trackd.v1 import webhooks_pb2, webhooks_pb2_grpc

Client = TestClient[Any, Any]
DEADLINE_SECONDS = 60.0  # a bound for a stuck stream under load, never asserted on


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """Webhook endpoints on loopback allowed: the overview lists one."""
    return dataclasses.replace(server_config, webhook_allow_private=True)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def frames(response: ClientResponse) -> Any:
    """(kind, data) of each server-sent event of ``response``."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            kind, data = "message", None
            for line in frame.split(b"\n"):
                if line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = orjson.loads(line[6:])
            if data is not None:
                yield kind, data


async def first(response: ClientResponse, kind: str, match: Any) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE_SECONDS):
        async for got, data in frames(response):
            if got == kind and match(data):
                return dict(data)
    raise AssertionError("the stream ended")


async def test_the_page_and_its_assets_carry_strict_headers(http: Client) -> None:
    response = await http.get("/console")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Server"] == "trackd"
    page = await response.text()
    assert page == (STATIC / "index.html").read_text()
    # Every script is a file of the gateway's: none inline, none from elsewhere.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [(' src="/console/assets/console.js" defer', ""),
                       (' src="/console/assets/overview.js" defer', "")]
    assert "http://" not in page
    assert "https://" not in page
    scripts_kinds = {"text/javascript", "application/javascript"}
    for asset, kinds in (("console.js", scripts_kinds), ("overview.js", scripts_kinds),
                         ("console.css", {"text/css"})):
        served = await http.get(f"/console/assets/{asset}")
        assert served.status == 200
        assert served.content_type in kinds
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert await served.read() == (STATIC / asset).read_bytes()
    for name in ("console.js", "overview.js"):  # data only as text, never as HTML
        script = (STATIC / name).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in script, (name, sink)


@pytest.mark.parametrize("path", ["/console/api/overview", "/console/api/events",
                                  "/console/api/decisions"])
async def test_the_key_comes_only_from_the_authorization_header(
        http: Client, make_key: KeyFactory, path: str) -> None:
    key = await make_key("acme", (SCOPE_EVENTS_READ,))
    for headers, query in (({}, {}), ({}, {"key": key}), ({}, {"access_token": key}),
                           ({"Authorization": key}, {}), ({"Authorization": "Bearer "}, {})):
        response = await http.get(path, headers=headers, params=query)
        assert response.status == 401
        assert await response.json() == {"error": {
            "code": "unauthorized", "message": "no API key: send an API key holding "
            "events:read as: Authorization: Bearer <key>"}}
    # Not ASCII: gRPC metadata cannot carry it, so it never leaves the gateway.
    response = await http.get(path, headers=bearer("trk_\u00e9t\u00e9"))
    assert (response.status, await response.json()) == (401, {"error": {
        "code": "unauthorized", "message": "invalid API key"}})
    unknown = await http.get(path, headers=bearer("trk_" + "0" * 40))
    assert unknown.status == 401
    assert (await unknown.json())["error"]["code"] == "unauthorized"
    without_scope = await http.get(path, headers=bearer(await make_key("acme", DEFAULT_SCOPES)))
    assert without_scope.status == 403
    body = await without_scope.json()
    assert body["error"]["code"] == "forbidden"
    assert "events:read" in body["error"]["message"]


async def test_the_overview(http: Client, make_key: KeyFactory, server: TrackdServer) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    response = await http.get("/console/api/overview", headers=bearer(reader))
    assert response.status == 200
    body = await response.json()
    assert len(body["minutes"]) == 60
    assert body["minutes"][0] == {"minute": body["minutes"][0]["minute"], "stored": 0,
                                  "duplicates": 0, "rate_limited": 0, "refused": {}}
    assert (body["top_event_names"], body["top_violations"]) == ([], [])
    assert body["webhooks"] is None  # the key may not list them
    assert "webhooks:manage" in body["webhooks_error"]
    manager = await make_key("acme", ALL_SCOPES)
    every = await http.get("/console/api/overview", headers=bearer(manager))
    assert (await every.json())["webhooks"] == []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        created = await webhooks_pb2_grpc.WebhookServiceStub(channel).CreateEndpoint(
            webhooks_pb2.CreateEndpointRequest(url="http://127.0.0.1:9/hook",
                                               event_names=["signup"]),
            metadata=(("authorization", f"Bearer {manager}"),))
    listed = await http.get("/console/api/overview", headers=bearer(manager))
    assert (await listed.json())["webhooks"] == [{
        "id": created.endpoint.id, "url": "http://127.0.0.1:9/hook", "state": "enabled",
        "lag_seconds": 0.0, "dead_letters": 0, "queued": 0, "last_error": "",
        "event_names": ["signup"]}]


async def test_streams_carry_events_and_decisions(http: Client, make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    writer = await make_key("acme", ("track:events",))
    events = await http.get("/console/api/events", headers=bearer(reader))
    assert events.status == 200
    assert events.headers["Content-Type"] == "text/event-stream"
    decisions = await http.get("/console/api/decisions", headers=bearer(reader))
    assert decisions.status == 200
    opened = await events.content.readuntil(b"\n\n")  # Subscribe is open: from now on
    assert opened == b": open\n\n"

    name = f"console_{uuid.uuid4().hex[:8]}"
    sent = await http.post("/api/v1/events", headers=bearer(writer), json={
        "external_user_id": "u_1", "name": name, "properties": {"html": "<b>x</b>", "n": 3}})
    assert sent.status == 202
    event = await first(events, "event", lambda data: data["name"] == name)
    assert event["request_id"] == sent.headers["X-Request-Id"]
    assert (event["source"], event["user_id"], event["properties"]) == (
        "vibefollow", "u_1", {"html": "<b>x</b>", "n": 3})

    bad = await http.post("/api/v1/events", headers=bearer(writer), json={
        "external_user_id": "u_1", "name": "bad", "properties": {"$bad": 1}})
    assert bad.status == 422
    decision = await first(decisions, "decision",
                           lambda data: data["request_id"] == bad.headers["X-Request-Id"])
    assert decision == {**decision, "kind": "refused", "source": "vibefollow",
                        "http_status": 422, "grpc_code": "INVALID_ARGUMENT",
                        "reason": "INVALID_ARGUMENT", "method": "TrackEvent"}
    # The field as VibeFollow's answer named it.
    assert (await bad.json())["errors"][0]["field"] == "properties.$bad"
    assert (decision["field"], decision["description"]) == ("properties.$bad", KEY_RULE)

    # A door whose answer is not the table's: Amplitude refuses a bad event with 400.
    amplitude = await http.post("/2/httpapi", json={"api_key": writer, "events": [
        {"user_id": "user_1", "event_type": "bad", "event_properties": {"$bad": 1}}]})
    assert amplitude.status == 400, await amplitude.text()
    decision = await first(decisions, "decision",
                           lambda data: data["request_id"] == amplitude.headers["X-Request-Id"])
    assert (decision["source"], decision["http_status"], decision["grpc_code"]) == (
        "amplitude", 400, "INVALID_ARGUMENT")
    events.close()
    decisions.close()


async def test_the_events_stream_resumes_after_a_cursor(http: Client,
                                                      make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    writer = await make_key("acme", ("track:events",))

    async def send(name: str) -> None:
        sent = await http.post("/api/v1/events", headers=bearer(writer),
                               json={"external_user_id": "u_1", "name": name})
        assert sent.status == 202

    first_stream = await http.get("/console/api/events", headers=bearer(reader))
    assert await first_stream.content.readuntil(b"\n\n") == b": open\n\n"
    await send("before_break")
    seen = await first(first_stream, "event", lambda data: data["name"] == "before_break")
    first_stream.close()
    await send("during_break")  # nobody is listening
    resumed = await http.get("/console/api/events", headers=bearer(reader),
                             params={"cursor": seen["cursor"]})
    assert resumed.status == 200
    async with asyncio.timeout(DEADLINE_SECONDS):
        kinds = frames(resumed)
        kind, data = await anext(kinds)
    assert (kind, data["name"]) == ("event", "during_break")
    resumed.close()
    bad = await http.get("/console/api/events", headers=bearer(reader),
                         params={"cursor": "c1.nonsense"})
    async with asyncio.timeout(DEADLINE_SECONDS):
        kind, data = await anext(frames(bad))
    assert kind == "error"
    assert data["error"]["code"] == "invalid_request"
    bad.close()


async def test_open_streams_end_when_the_gateway_stops(http: Client,
                                                      make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    stream = await http.get("/console/api/events", headers=bearer(reader))
    assert await stream.content.readuntil(b"\n\n") == b": open\n\n"
    await end_streams(http.app)  # what the gateway's on_shutdown runs
    async with asyncio.timeout(DEADLINE_SECONDS):
        assert await stream.content.read() == b""  # the answer ended


def calls(method: str) -> float:
    """``trackd_grpc_requests_total`` of ``method``, every status code."""
    return sum(sample.value for metric in REGISTRY.collect()
               if metric.name == "trackd_grpc_requests" for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["method"] == method)


async def test_a_stream_checks_the_key_with_no_call_but_its_own(
        http: Client, make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    overviews = calls("GetOverview")  # a unary call: counted (streams are not)
    unknown = await http.get("/console/api/events", headers=bearer("trk_" + "0" * 40))
    assert unknown.status == 401
    assert (await unknown.json())["error"]["code"] == "unauthorized"
    for path in ("/console/api/events", "/console/api/decisions"):
        stream = await http.get(path, headers=bearer(reader))
        assert stream.status == 200
        assert await stream.content.readuntil(b"\n\n") == b": open\n\n"
        stream.close()
    assert calls("GetOverview") - overviews == 0


def test_a_refusals_http_status_is_the_one_its_door_answered() -> None:
    """As each dialect renders it: VibeFollow's invalid event is its 422, Amplitude's bad
    key its 400 (the one status its SDK does not retry), gRPC has none."""
    code = {c: c.value[0] for c in grpc.StatusCode}
    assert http_status("vibefollow", code[grpc.StatusCode.INVALID_ARGUMENT], "") == 422
    assert http_status("amplitude", code[grpc.StatusCode.UNAUTHENTICATED],
                       "API_KEY_INVALID") == 400
    assert http_status("segment", code[grpc.StatusCode.UNAUTHENTICATED], "") == 401
    assert http_status("mixpanel", code[grpc.StatusCode.RESOURCE_EXHAUSTED], "") == 429
    assert http_status("grpc", code[grpc.StatusCode.INVALID_ARGUMENT], "") is None
