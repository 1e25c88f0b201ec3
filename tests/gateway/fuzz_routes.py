"""The routes tests/gateway/test_fuzz.py fuzzes: each with a valid seed body and how it
takes its credential, and the check that an answer is in the envelope of the dialect
owning its path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trackd.gateway.dialects.amplitude import AMPLITUDE_MAX_BODY_BYTES
from trackd.gateway.dialects.posthog import ROUTES as POSTHOG_PATHS
from trackd.gateway.dialects.segment import SEGMENT_PATHS


def _str(value: Any) -> bool:
    return isinstance(value, str)


def vibefollow(body: Any, status: int) -> bool:
    if status < 300:
        return isinstance(body, dict) and "data" in body
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, list) and len(errors) == 1 and \
        _str(errors[0].get("code")) and _str(errors[0].get("message"))


def cueflow(body: Any, status: int) -> bool:
    if status < 300:
        return isinstance(body, dict) and "data" in body
    return isinstance(body, dict) and list(body) == ["error"] and _str(body["error"])


def flywheel(body: Any, status: int) -> bool:
    if status < 300:
        return bool(body == {"success": True, "message": "Event tracked successfully"})
    return isinstance(body, dict) and sorted(body) == ["code", "error"] and \
        _str(body["error"]) and _str(body["code"])


def databuddy(body: Any, status: int) -> bool:
    if status < 300:
        return isinstance(body, dict) and body.get("status") == "success"
    return isinstance(body, dict) and sorted(body) == ["message", "status"] and \
        body["status"] == "error" and _str(body["message"])


def segment(body: Any, status: int) -> bool:
    if status < 300:
        return bool(body == {"success": True})
    return isinstance(body, dict) and sorted(body) == ["code", "message", "success"] and \
        body["success"] is False and _str(body["code"]) and _str(body["message"])


def posthog(body: Any, status: int) -> bool:
    if status < 300:
        return bool(body == {"status": 1})
    return isinstance(body, dict) and sorted(body) == ["attr", "code", "detail", "type"] and \
        _str(body["type"]) and _str(body["code"]) and _str(body["detail"])


def amplitude(body: Any, status: int) -> bool:
    if status < 300:
        return isinstance(body, dict) and body.get("code") == 200 and \
            isinstance(body.get("events_ingested"), int)
    return isinstance(body, dict) and body.get("code") == status and _str(body.get("error"))


def mixpanel(body: Any, status: int) -> bool:
    if status < 300:
        return bool(body in (1, {"status": 1, "error": None}))
    return body == 0 or (isinstance(body, dict) and sorted(body) == ["error", "status"]
                         and body["status"] == 0 and _str(body["error"]))


def plain(body: Any, status: int) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and sorted(error) == ["code", "message"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    seed: Any
    envelope: Callable[[Any, int], bool]
    auth: str = "bearer"


EVENT = {"external_user_id": "u1", "name": "signed_up", "properties": {"plan": "pro"},
         "timestamp": "2024-01-15T10:30:00Z"}
ROUTES = [
    Route("POST", "/api/v1/events", EVENT, vibefollow),
    Route("POST", "/api/v1/events/batch", {"events": [EVENT, EVENT]}, vibefollow),
    Route("POST", "/api/v1/users", {"external_user_id": "u1", "email": "a@b.co",
                                    "traits": {"signupDate": "2024-01-15", "x": [1]}},
          vibefollow),
    Route("POST", "/api/v1/users/bulk", {"users": [{"external_user_id": "u1"},
                                                   {"external_user_id": "u2"}]}, vibefollow),
    Route("POST", "/v1/events", {"event": {"event": "x", "user_id": "u1",
                                           "timestamp": "2024-01-15T10:30:00Z",
                                           "properties": {"plan": "pro"}}},
          flywheel, auth="flywheel"),
    Route("POST", "/track", {"name": "x", "properties": {"a": {"b": 1}},
                             "timestamp": 1700000000000}, databuddy),
    Route("POST", "/identify", {"profileId": "u1", "traits": {"plan": "pro"},
                                "websiteId": "550e8400-e29b-41d4-a716-446655440000"},
          databuddy),
    Route("POST", "/api/v1/contacts", {"email": "a@b.co", "externalId": "c1",
                                       "signedUpAt": "2024-01-15T10:30:00Z",
                                       "customAttributes": {"a": 1}}, cueflow),
    Route("PATCH", "/api/v1/contacts/c1", {"name": "Ada", "customAttributes": {"b": 2}},
          cueflow),
    Route("GET", "/api/v1/contacts/c1", None, cueflow),
    Route("DELETE", "/api/v1/contacts/c1", None, cueflow),
    Route("POST", "/api/v1/events", {"externalId": "c1", "eventKey": "x",
                                     "properties": {"a": 1}}, cueflow),
    Route("POST", "/api/v1/audiences/evaluate", {"groups": [{"rules": [
        {"event": "x", "op": "has_done", "since": "2024-01-01T00:00:00Z"},
        {"property": "plan", "op": "equals", "value": "pro"}]}]}, cueflow),
    Route("POST", "/api/v1/contacts/c1/match", {"groups": [{"rules": [
        {"property": "plan", "op": "equals", "value": "pro"}]}]}, cueflow),
    Route("POST", "/v1/batch", {"batch": [
        {"type": "track", "userId": "u1", "event": "x", "messageId": "m1",
         "properties": {"a": 1}, "timestamp": "2024-01-15T10:30:00Z", "context": {"x": 1}},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
        {"type": "alias", "userId": "u1", "previousId": "a2"},
        {"type": "page", "anonymousId": "a1", "name": "Home",
         "originalTimestamp": "2024-01-15T10:30:00Z"}],
        "sentAt": "2024-01-15T10:30:01Z"}, segment, auth="segment"),
    Route("POST", "/v1/track", {"userId": "u1", "event": "x", "properties": {"a": 1}},
          segment, auth="segment"),
    Route("POST", "/v1/group", {"userId": "u1", "groupId": "g1", "traits": {"n": 1}},
          segment),
    Route("POST", "/v1/identify", {"userId": "u1", "anonymousId": "a1",
                                   "traits": {"plan": "pro"}}, segment, auth="segment"),
    Route("POST", "/v1/page", {"anonymousId": "a1", "name": "Home",
                               "properties": {"url": "https://x.example"}},
          segment, auth="segment"),
    Route("POST", "/v1/screen", {"userId": "u1", "name": "Home"}, segment, auth="segment"),
    Route("POST", "/v1/alias", {"userId": "u1", "previousId": "a2"}, segment,
          auth="segment"),
    Route("POST", "/batch/", {"api_key": "", "batch": [
        {"event": "x", "distinct_id": "u1", "uuid": "e1", "timestamp": "2024-01-15T10:30:00Z",
         "properties": {"a": 1, "$lib": "posthog-python", "$set": {"plan": "pro"}}},
        {"event": "$identify", "distinct_id": "u1",
         "properties": {"$anon_distinct_id": "a1", "$set_once": {"b": 2}}},
        {"event": "$create_alias", "distinct_id": "a2", "properties": {"alias": "u1"}}]},
          posthog, auth="posthog"),
    Route("POST", "/e/", [{"event": "$pageview", "properties": {
        "distinct_id": "a1", "token": "", "$current_url": "https://x.example"}}],
          posthog, auth="posthog"),
    Route("POST", "/capture/", {"api_key": "", "event": "x", "distinct_id": "u1",
                                "properties": {"a": 1}}, posthog, auth="posthog"),
    Route("POST", "/i/v0/e/", {"api_key": "", "batch": [
        {"event": "x", "distinct_id": "u1", "properties": {"$set": {"plan": "pro"}}}]},
          posthog, auth="posthog"),
    Route("POST", "/2/httpapi", {"api_key": "", "events": [
        {"event_type": "x", "user_id": "user-1", "device_id": "device-1", "insert_id": "i1",
         "time": 1700000000000, "event_properties": {"a": 1}, "platform": "Web",
         "user_properties": {"$set": {"plan": "pro"}, "$setOnce": {"b": 2}}},
        {"event_type": "$identify", "user_id": "user-1",
         "user_properties": {"$unset": {"c": "-"}}}]}, amplitude, auth="posthog"),
    Route("POST", "/batch", {"api_key": "", "events": [
        {"event_type": "y", "device_id": "device-2"}]}, amplitude, auth="posthog"),
    Route("POST", "/track", {"event": "x", "properties": {
        "token": "", "distinct_id": "u1", "$insert_id": "m1", "time": 1700000000.5,
        "mp_lib": "python", "plan": "pro"}}, mixpanel, auth="mixpanel"),
    Route("POST", "/engage", [{"$token": "", "$distinct_id": "u1", "$set": {"a": 1}},
                              {"$token": "", "$distinct_id": "u1", "$unset": ["a"]}],
          mixpanel, auth="mixpanel"),
    Route("POST", "/import", [{"event": "$identify", "properties": {
        "token": "", "$anon_id": "a1", "$identified_id": "u1"}}], mixpanel,
          auth="mixpanel"),
    Route("GET", "/nowhere", None, plain),
]
ENVELOPES = {route.path: route.envelope for route in ROUTES}
# Shared by two vendors: the body's shape picks the envelope (VibeFollow by default).
ENVELOPES["/api/v1/events"] = lambda body, status: vibefollow(body, status) or \
    cueflow(body, status)
# Databuddy's and Mixpanel's: a form body is Mixpanel's.
ENVELOPES["/track"] = lambda body, status: databuddy(body, status) or mixpanel(body, status)


def envelope_for(path: str) -> Callable[[Any, int], bool]:
    bare = path.split("?", 1)[0]
    if bare in ENVELOPES:
        return ENVELOPES[bare]
    if bare in SEGMENT_PATHS:
        return segment
    if bare in POSTHOG_PATHS:
        return posthog
    if bare in AMPLITUDE_MAX_BODY_BYTES:
        return amplitude
    if bare.startswith(("/api/v1/contacts", "/api/v1/audiences")):
        return cueflow
    if bare.startswith("/api/v1/"):
        return vibefollow
    if bare.startswith("/v1/"):
        return flywheel
    return plain
