"""Issue 11's findings, one row each: a hostile request over a raw socket to the gateway as
``trackd serve`` runs it, its exact status and envelope, that nothing was stored, that no
log line holds a traceback, the key or the body, and that a good request right after it
is answered within the client's timeout.

Finding 5 (rate limits per raw Authorization header) is not here: it moves into the
server with the rate limiter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError, Message

from tests.gateway.hostile_harness import (
    exchange,
    gateway_port,
    good_event,
    gzip_bomb,
    nested,
    request,
    serve_gateway,
    stored_counts,
)
from trackd.gateway.app import create_app
from trackd.gateway.convert import (
    DEPTH_IDENTIFY_TRAITS,
    DEPTH_RULE_VALUE,
    DEPTH_USER_TRAITS,
    UnencodableValue,
    check_depth,
)
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import TrackdServer
from trackd.storage import Store
from trackd.v1 import audiences_pb2, tracking_pb2, users_pb2
from trackd.wire.limits import DEPTH_EVENT_PROPERTIES

__all__ = ["gateway_port"]  # fixture

JSON = "application/json"
LIMIT = 5 * 1024 * 1024
OUT_OF_RANGE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
TOO_DEEP = ("nests too deeply for protobuf to decode (at most 33 nested objects here; "
            "an array counts two thirds of one)")
EARLY = "0001-01-01T00:00:00+01:00"  # year 0 in UTC
LATE = "9999-12-31T23:00:00-14:00"  # year 10000 in UTC
DEEP_A = ".a" * 33


def vf_error(status: int, code: str, message: str, field: str = "") -> tuple[int, Any]:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return status, {"errors": [error]}


@dataclass
class Case:
    id: str
    build: Callable[[str], bytes]
    status: int
    body: Any
    # The connection closes after the answer (Connection: close, or an HTTP/1.0 answer
    # to a request the parser refused): nothing more of it is read.
    closes: bool = False
    stored: dict[str, int] = field(default_factory=lambda: {"events": 0, "users": 0})


def post(path: str, body: Any, *, auth: str = "bearer", **headers: str) -> Callable[[str], bytes]:
    def build(key: str) -> bytes:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        credential = {"bearer": {"Authorization": f"Bearer {key}"},
                      "plain": {"Authorization": key, "Auth-Type": "api"}}[auth]
        return request("POST", path, raw, headers={
            **credential, "Content-Type": JSON,
            **{name.replace("_", "-"): value for name, value in headers.items()}})
    return build


def raw(text: str | Callable[[str], bytes]) -> Callable[[str], bytes]:
    if callable(text):
        return text
    return lambda key: text.replace("$KEY", key).encode("latin-1")


EVENT = {"external_user_id": "u1", "name": "x"}
BOMB = gzip_bomb()
VF_413 = vf_error(413, "payload_too_large", f"request body exceeds the limit of {LIMIT} bytes")
NOT_GZIP = "request body is not valid gzip (it says Content-Encoding: gzip)"
NOT_DEFLATE = "request body is not valid deflate (it says Content-Encoding: deflate)"
UNSUPPORTED = "Content-Encoding must be gzip, deflate or identity"
DATABUDDY_400 = (400, {"status": "error", "message": "Invalid request body"})

CASES = [
    # 1. a gzip bomb: refused after inflating at most the limit, and the connection goes.
    # (4 MB inflating to 4 GiB: before, the next request waited for all of it.)
    Case("1 gzip bomb, VibeFollow", post("/api/v1/events", BOMB, Content_Encoding="gzip"),
         *VF_413),
    Case("1 gzip bomb, Databuddy", post("/track", BOMB, Content_Encoding="gzip"),
         413, {"status": "error", "message": "Payload too large"}),
    Case("1 gzip bomb, Flywheel", post("/v1/events", BOMB, auth="plain",
                                       Content_Encoding="gzip"),
         413, {"error": f"request body exceeds the limit of {LIMIT} bytes",
               "code": "PAYLOAD_TOO_LARGE"}),
    # Refused while the body is still arriving: the rest is never read.
    Case("1 body over the limit, still arriving", raw(lambda key: request(
        "POST", "/api/v1/events/batch", bytes(LIMIT + 1024 * 1024), length=False, headers={
            "Authorization": f"Bearer {key}", "Content-Length": str(64 * LIMIT)})),
         *VF_413, closes=True),
    # 2. bad or unsupported Content-Encoding.
    Case("2 gzip, not gzip", post("/api/v1/events", b"not gzip", Content_Encoding="gzip"),
         *vf_error(400, "invalid_request", NOT_GZIP)),
    Case("2 deflate, not deflate",
         post("/api/v1/users", b"not gzip", Content_Encoding="deflate"),
         *vf_error(400, "invalid_request", NOT_DEFLATE)),
    Case("2 gzip truncated", post("/api/v1/events/batch", BOMB[:1000],
                                  Content_Encoding="gzip"),
         *vf_error(400, "invalid_request", NOT_GZIP)),
    Case("2 br, VibeFollow", post("/api/v1/events", b"xx", Content_Encoding="br"),
         *vf_error(415, "unsupported_media_type", UNSUPPORTED)),
    Case("2 zstd, Cueflow", post("/api/v1/contacts", b"xx", Content_Encoding="zstd"),
         415, {"error": UNSUPPORTED}),
    Case("2 br, Flywheel", post("/v1/events", b"xx", auth="plain", Content_Encoding="br"),
         415, {"error": UNSUPPORTED, "code": "UNSUPPORTED_MEDIA_TYPE"}),
    Case("2 zstd, a body still arriving", raw(lambda key: request(
        "POST", "/api/v1/events", bytes(1024 * 1024), length=False, headers={
            "Authorization": f"Bearer {key}", "Content-Encoding": "zstd",
            "Content-Length": str(64 * LIMIT)})),
         *vf_error(415, "unsupported_media_type", UNSUPPORTED), closes=True),
    Case("2 gzip, not gzip, Databuddy",
         post("/track", b"not gzip", Content_Encoding="gzip"), *DATABUDDY_400),
    # 3. times outside years 1-9999 once in UTC.
    Case("3 VibeFollow event", post("/api/v1/events", {**EVENT, "timestamp": EARLY}),
         *vf_error(422, "validation_failed", f"timestamp {OUT_OF_RANGE}", "timestamp")),
    Case("3 VibeFollow batch", post("/api/v1/events/batch", {"events": [
        EVENT, {**EVENT, "timestamp": LATE}]}),
         *vf_error(422, "validation_failed", f"events[1].timestamp {OUT_OF_RANGE}",
                   "events[1].timestamp")),
    Case("3 VibeFollow user", post("/api/v1/users", {
        "external_user_id": "u1", "traits": {"signupDate": EARLY}}),
         *vf_error(422, "validation_failed", f"traits.signupDate {OUT_OF_RANGE}",
                   "traits.signupDate")),
    Case("3 VibeFollow users/bulk: per record",
         post("/api/v1/users/bulk", {"users": [
             {"external_user_id": "ok"},
             {"external_user_id": "u2", "traits": {"signupDate": LATE}}]}),
         200, {"data": {"accepted": 1, "rejected": 1, "errors": [{
             "index": 1, "code": "validation_failed",
             "message": f"traits.signupDate {OUT_OF_RANGE}", "field": "traits.signupDate"}]},
               "meta": {"received": 2}}, stored={"events": 0, "users": 1}),
    Case("3 Flywheel", post("/v1/events", {"event": {
        "event": "x", "user_id": "u1", "timestamp": LATE}}, auth="plain"),
         400, {"error": f"Validation failed: timestamp {OUT_OF_RANGE}",
               "code": "VALIDATION_ERROR"}),
    Case("3 Databuddy ISO", post("/track", {"name": "x", "timestamp": EARLY}),
         *DATABUDDY_400),
    Case("3 Cueflow POST signedUpAt", post("/api/v1/contacts", {
        "email": "a@b.co", "signedUpAt": EARLY}),
         400, {"error": f"Invalid request body: signedUpAt {OUT_OF_RANGE}"}),
    Case("3 Cueflow PATCH signedUpAt", raw(lambda key: request(
        "PATCH", "/api/v1/contacts/c1", orjson.dumps({"signedUpAt": LATE}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": JSON})),
         400, {"error": f"Invalid request body: signedUpAt {OUT_OF_RANGE}"}),
    Case("3 audience since", post("/api/v1/audiences/evaluate", {"groups": [{"rules": [
        {"event": "x", "op": "has_done", "since": EARLY}]}]}),
         400, {"error": "Invalid request body: groups[0].rules[0].since "
                        f"{OUT_OF_RANGE}"}),
    Case("3 audience before", post("/api/v1/audiences/evaluate", {"groups": [{"rules": [
        {"property": "plan", "op": "date_before", "before": LATE}]}]}),
         400, {"error": "Invalid request body: groups[0].rules[0].before "
                        f"{OUT_OF_RANGE}"}),
    # 4. nesting protobuf cannot decode: refused before any message is built.
    Case("4 VibeFollow event", post("/api/v1/events", {**EVENT, "properties": nested(34)}),
         *vf_error(422, "validation_failed", f"properties{DEEP_A} {TOO_DEEP}",
                   f"properties{DEEP_A}")),
    Case("4 VibeFollow batch", post("/api/v1/events/batch", {"events": [
        {**EVENT, "properties": nested(36)}]}),
         *vf_error(422, "validation_failed", f"events[0].properties{DEEP_A} {TOO_DEEP}",
                   f"events[0].properties{DEEP_A}")),
    Case("4 VibeFollow user", post("/api/v1/users", {
        "external_user_id": "u1", "traits": {"x": nested(34)}}),
         *vf_error(422, "validation_failed", f"traits.x{'.a' * 32} {TOO_DEEP}",
                   f"traits.x{'.a' * 32}")),
    Case("4 VibeFollow users/bulk: per record", post("/api/v1/users/bulk", {"users": [
        {"external_user_id": "ok"}, {"external_user_id": "u2", "traits": {"x": nested(39)}}]}),
         200, {"data": {"accepted": 1, "rejected": 1, "errors": [{
             "index": 1, "code": "validation_failed",
             "message": f"traits.x{'.a' * 32} {TOO_DEEP}", "field": f"traits.x{'.a' * 32}"}]},
               "meta": {"received": 2}}, stored={"events": 0, "users": 1}),
    Case("4 Databuddy track", post("/track", {"name": "x", "properties": nested(35)}),
         *DATABUDDY_400),
    # 6. a key inside a malformed request is neither echoed nor logged.
    Case("6 DEL after the key", raw("POST /api/v1/events HTTP/1.1\r\nHost: h\r\n"
                                    "Authorization: Bearer $KEY\x7f\r\n"
                                    "Content-Length: 2\r\n\r\n{}"),
         *vf_error(400, "invalid_request", "invalid character in a header value"),
         closes=True),
    Case("6 Authorization over 8190 bytes",
         raw("POST /v1/events HTTP/1.1\r\nHost: h\r\nAuthorization: $KEY" + "x" * 8200
             + "\r\nContent-Length: 2\r\n\r\n{}"),
         431, {"error": "a header field is too long (limit 8190 bytes)",
               "code": "REQUEST_HEADER_FIELDS_TOO_LARGE"}, closes=True),
    Case("6 key in query, bad HTTP version",
         raw("GET /api/v1/contacts/x?key=$KEY HTTP/9.x\r\nHost: h\r\n\r\n"),
         400, {"error": "Invalid request body: invalid request line or HTTP version"},
         closes=True),
    # 7. errors from the HTTP layer, in the envelope of the path's dialect.
    Case("7 PUT, VibeFollow", raw("PUT /api/v1/events HTTP/1.1\r\nHost: h\r\n"
                                  "Content-Length: 0\r\n\r\n"),
         *vf_error(405, "method_not_allowed", "method PUT not allowed; allowed: POST")),
    Case("7 DELETE, Flywheel", raw("DELETE /v1/events HTTP/1.1\r\nHost: h\r\n\r\n"),
         405, {"error": "method DELETE not allowed; allowed: POST",
               "code": "METHOD_NOT_ALLOWED"}),
    Case("7 GET, Databuddy", raw("GET /track HTTP/1.1\r\nHost: h\r\n\r\n"),
         405, {"status": "error", "message": "Request failed"}),
    Case("7 unknown method", raw("FOO /api/v1/users HTTP/1.1\r\nHost: h\r\n\r\n"),
         *vf_error(400, "invalid_request", "invalid request method"), closes=True),
    Case("7 404, Cueflow", raw("GET /api/v1/contacts/a/b HTTP/1.1\r\nHost: h\r\n\r\n"),
         404, {"error": "Contact not found"}),
    Case("7 404, VibeFollow", raw("GET /api/v1/nothing HTTP/1.1\r\nHost: h\r\n\r\n"),
         *vf_error(404, "not_found", "no such route")),
    Case("7 404, no dialect", raw("GET /contacts/../.. HTTP/1.1\r\nHost: h\r\n\r\n"),
         404, {"error": {"code": "not_found", "message": "no such route"}}),
    Case("7 lower-case method", raw("post /api/v1/events HTTP/1.1\r\nHost: h\r\n"
                                    "Content-Length: 2\r\n\r\n{}"),
         *vf_error(400, "invalid_request", "invalid request method"), closes=True),
    Case("7 duplicate Content-Type", raw(
        "POST /api/v1/events HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"),
         *vf_error(400, "invalid_request", "a header that may appear once appears twice"),
         closes=True),
    Case("7 129 headers", raw("POST /v1/events HTTP/1.1\r\nHost: h\r\n"
                              + "".join(f"X-H{i}: 1\r\n" for i in range(129))
                              + "Content-Length: 2\r\n\r\n{}"),
         431, {"error": "too many header fields (limit 128)",
               "code": "REQUEST_HEADER_FIELDS_TOO_LARGE"}, closes=True),
    Case("7 header over 8190 bytes", raw("POST /track HTTP/1.1\r\nHost: h\r\nX-Big: "
                                         + "x" * 8200 + "\r\nContent-Length: 2\r\n\r\n{}"),
         431, {"status": "error", "message": "Request failed"}, closes=True),
    Case("7 bad chunk size", raw("POST /api/v1/events HTTP/1.1\r\nHost: h\r\n"
                                 "Authorization: Bearer $KEY\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
         *vf_error(400, "invalid_request", "invalid chunked encoding"), closes=True),
    Case("7 Transfer-Encoding with Content-Length", raw(
        "POST /api/v1/contacts HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 7\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
         400, {"error": "Invalid request body: Transfer-Encoding together with "
                        "Content-Length, or an invalid Transfer-Encoding"}, closes=True),
    Case("7 missing Host", raw("POST /api/v1/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
         *vf_error(400, "invalid_request", "missing or invalid Host header"), closes=True),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_request(case: Case, gateway_port: int, key: str, store: Store,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    raw_request = case.build(key)
    answer = (await exchange(gateway_port, raw_request))[0]
    assert (answer.status, answer.json()) == (case.status, case.body)
    assert answer.headers["content-type"].startswith(JSON)
    assert answer.closed == case.closes
    assert await stored_counts(store) == case.stored
    # The service answers a good request at once (the client gives up after 5 s).
    good = (await exchange(gateway_port, good_event(key)))[0]
    assert (good.status, good.json()) == (202, {"data": {"accepted": True}})
    # Logs: no traceback, no credential, no body; at most one line about the request
    # besides the access lines (one per HTTP request and per RPC, checked above too).
    body = raw_request.split(b"\r\n\r\n", 1)[1][:64]
    for record in caplog.records:
        text = record.getMessage()
        assert record.exc_info is None, text
        assert record.levelno < logging.ERROR, text
        assert key not in text
        if len(body) >= 8:
            assert body.decode("latin-1") not in text
    assert len([r for r in caplog.records
                if r.name.startswith("trackd") and r.name != "trackd.access"]) <= 1


async def test_depth_limit_is_protobufs(gateway_port: int, key: str, store: Store) -> None:
    """33 nested objects reach the server (which has its own, lower, limit: 422 from it);
    34 are the gateway's 422; nothing between is a 5xx."""
    answers = {}
    for depth in range(28, 42):
        build = post("/api/v1/events", {**EVENT, "properties": nested(depth)})
        answer = (await exchange(gateway_port, build(key)))[0]
        answers[depth] = (answer.status, TOO_DEEP in answer.body.decode())
    assert all(status in (202, 422) for status, _ in answers.values()), answers
    assert [depth for depth, (_, ours) in answers.items() if ours] == list(range(34, 42))


async def test_valid_request_pipelined_before_a_malformed_one_is_answered(
        gateway_port: int, key: str, store: Store) -> None:
    bad = request("POST", "/api/v1/events", b"{}", length=False, headers={
        "Authorization": f"Bearer {key}", "Content-Length": "1x"})
    answers = await exchange(gateway_port, good_event(key) + good_event(key) + bad,
                             responses=3)
    assert [(a.status, a.json()) for a in answers] == [
        (202, {"data": {"accepted": True}}), (202, {"data": {"accepted": True}}),
        vf_error(400, "invalid_request", "invalid Content-Length")]
    assert answers[-1].closed
    assert await stored_counts(store) == {"events": 2, "users": 0}


async def test_request_smuggled_in_a_body_is_not_answered(
        gateway_port: int, key: str, store: Store) -> None:
    """The replay after a parse error parses the same bytes from the same start: a request
    inside a body stays body."""
    smuggled = good_event(key)
    carrier = request("POST", "/api/v1/events", smuggled, headers={
        "Authorization": f"Bearer {key}", "Content-Type": JSON})
    bad = b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: zz\r\n\r\n"
    answers = await exchange(gateway_port, carrier + bad, responses=3)
    assert [a.status for a in answers] == [400, 400]  # the carrier's body is not JSON
    assert await stored_counts(store) == {"events": 0, "users": 0}


async def test_a_bug_is_a_json_500_and_the_one_traceback(
        server: TrackdServer, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug")

    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}"))
    app.router.add_post("/api/v1/broken", broken)
    app.router.add_post("/v1/broken", broken)
    async with serve_gateway(GatewaySettings(), app) as port:
        vibefollow = (await exchange(port, request("POST", "/api/v1/broken", b"{}")))[0]
        flywheel = (await exchange(port, request("POST", "/v1/broken", b"{}")))[0]
    assert (vibefollow.status, vibefollow.json()) == vf_error(500, "internal_error",
                                                              "internal error")
    assert (flywheel.status, flywheel.json()) == (
        500, {"error": "internal error", "code": "INTERNAL_ERROR"})
    bugs = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in bugs] == ["bug: POST /api/v1/broken raised",
                                              "bug: POST /v1/broken raised"]


def _nested_lists(depth: int) -> dict[str, Any]:
    value: Any = [1]
    for _ in range(depth - 1):
        value = [value]
    return {"l": value}


@pytest.mark.parametrize("shape", ["event", "batch", "identify", "user", "bulk", "rule"])
def test_depth_check_agrees_with_protobufs_decoder(shape: str) -> None:
    """For each request shape carrying a Struct, the gateway's check passes exactly the
    values protobuf's decoder can decode (built here without the check)."""
    def build(values: dict[str, Any]) -> tuple[Message, struct_pb2.Struct, int]:
        if shape == "event":
            event_request = tracking_pb2.TrackEventRequest()
            return event_request, event_request.event.properties, DEPTH_EVENT_PROPERTIES
        if shape == "batch":
            batch = tracking_pb2.BatchTrackRequest()
            return batch, batch.events.add().properties, DEPTH_EVENT_PROPERTIES
        if shape == "identify":
            identify = tracking_pb2.IdentifyRequest()
            return identify, identify.traits, DEPTH_IDENTIFY_TRAITS
        if shape == "user":
            upsert = users_pb2.UpsertUserRequest()
            return upsert, upsert.user.traits, DEPTH_USER_TRAITS
        if shape == "bulk":
            bulk = users_pb2.BatchUpsertUsersRequest()
            return bulk, bulk.users.add().traits, DEPTH_USER_TRAITS
        evaluate = audiences_pb2.EvaluateAudienceRequest()
        return evaluate, struct_pb2.Struct(), DEPTH_RULE_VALUE

    for make in (nested, _nested_lists):
        for depth in range(25, 55):
            values = make(depth)
            message, struct, at = build(values)
            try:
                check_depth(values, "p", at)
                passes = True
            except UnencodableValue:
                passes = False
            struct.update(values)
            if shape == "rule":
                rule = message.audience.groups.add().rules.add()  # type: ignore[attr-defined]
                rule.property.value.CopyFrom(struct.fields["l" if "l" in values else "a"])
            try:
                type(message).FromString(message.SerializeToString())
                decodes = True
            except DecodeError:
                decodes = False
            assert passes == decodes, (shape, make.__name__, depth)
