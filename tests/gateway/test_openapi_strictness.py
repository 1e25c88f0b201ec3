"""What schemathesis's ``positive_data_acceptance`` and ``negative_data_rejection`` found
(issue 26), one case each, with exact answers and nothing stored: the document and the
service now agree on each. The schemathesis run (test_openapi_schemathesis.py) checks
the rest; here the rules the document restates from the server are also held equal to
the server's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.hostile_harness import stored_counts
from trackd.gateway.dialects import cueflow_audiences
from trackd.gateway.openapi import limits
from trackd.gateway.openapi.document import build_document
from trackd.server.audiences.rules import NEEDS_VALUE, NUMERIC, WITHIN
from trackd.storage import Store

Client = TestClient[Any, Any]
NOTHING = {"events": 0, "users": 0}


def bearer(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


def test_the_documents_audience_rules_are_the_servers() -> None:
    def names(ops: Mapping[str, Any], wanted: Collection[Any]) -> set[str]:
        return {name for name, value in ops.items() if value in wanted}

    assert set(limits.AUDIENCE_WITHIN_EVENT_OPS) == names(cueflow_audiences.EVENT_OPS, WITHIN)
    assert set(limits.AUDIENCE_VALUE_OPS) == names(cueflow_audiences.PROPERTY_OPS, NEEDS_VALUE)
    assert set(limits.AUDIENCE_NUMERIC_OPS) == names(cueflow_audiences.PROPERTY_OPS, NUMERIC)


async def test_an_empty_idempotency_key_is_refused(http: Client, key: str,
                                                   store: Store) -> None:
    """Before: 202, as if no key had been sent (the document says 1-255 characters)."""
    for path, body in (("/api/v1/events", {"external_user_id": "u1", "name": "x"}),
                       ("/api/v1/users", {"external_user_id": "u1"})):
        response = await http.post(path, json=body, headers=bearer(key, **{
            "Idempotency-Key": ""}))
        assert response.status == 422
        assert await response.json() == {"errors": [{
            "code": "validation_failed", "message": "Idempotency-Key must not be empty",
            "field": "Idempotency-Key"}]}
    assert await stored_counts(store) == NOTHING


@pytest.mark.parametrize("idempotency_key", ["", "x" * 256, "caf\u00e9"])
async def test_a_cueflow_event_refuses_an_idempotency_key_the_document_forbids(
        http: Client, key: str, store: Store, idempotency_key: str) -> None:
    """Before: 201 (the header was ignored for a Cueflow-shaped body)."""
    response = await http.post("/api/v1/events", json={
        "externalId": "c1", "eventKey": "x"}, headers=bearer(key, **{
            "Idempotency-Key": idempotency_key}))
    assert response.status == 400
    assert await response.json() == {
        "error": "Invalid request body: Idempotency-Key must be 1 to 255 printable characters"}
    assert await stored_counts(store) == NOTHING


@pytest.mark.parametrize("website_id", ["",
    "{550e8400-e29b-41d4-a716-446655440000}", "550e8400e29b41d4a716446655440000",
    "urn:uuid:550e8400-e29b-41d4-a716-446655440000"])
async def test_a_website_id_not_in_the_uuid_form_names_no_website(
        http: Client, key: str, store: Store, website_id: str) -> None:
    """Before: 200 with a key (empty was no website_id; Python's UUID() reads the rest)."""
    response = await http.post("/track", params={"website_id": website_id},
                               json={"name": "x"}, headers=bearer(key))
    assert response.status == 404
    assert await response.json() == {"status": "error", "message": "Website not found"}
    assert await stored_counts(store) == NOTHING


@pytest.mark.parametrize(("rule", "message"), [
    ({"event": "x", "op": "has_done", "count": -1}, "groups[0].rules[0].count must be 0 or more"),
    ({"event": "x", "op": "has_done", "within": "0d"},
     "groups[0].rules[0].within must be a positive duration"),
    ({"event": "x", "op": "last_done_within", "within": "100000w"},
     "groups[0].rules[0].within is out of range"),
])
async def test_audience_rules_the_document_forbids_are_refused(
        http: Client, key: str, rule: dict[str, Any], message: str) -> None:
    """Before: 200 (a count or a zero duration an operator does not use was ignored; a
    duration of 100,000 weeks was accepted)."""
    response = await http.post("/api/v1/audiences/evaluate",
                               json={"groups": [{"rules": [rule]}]}, headers=bearer(key))
    assert response.status == 400
    assert await response.json() == {"error": f"Invalid request body: {message}"}


def test_the_document_states_the_rules() -> None:
    """What each finding needed stated: nested keys, the operators' required fields, an
    empty Origin allowed, no text/plain body schema that would allow any string."""
    document = build_document()
    schemas = document["components"]["schemas"]
    assert schemas["JsonValue"]["propertyNames"]["pattern"] == r"^[^$\x00][^\x00]*$"
    assert schemas["JsonValue"]["additionalProperties"] == {
        "$ref": "#/components/schemas/JsonValue"}
    assert schemas["CueflowContactChange"]["properties"]["externalId"] is False
    track = document["paths"]["/track"]["post"]
    # Databuddy's JSON and Mixpanel's form (data=<json>), no text/plain.
    assert list(track["requestBody"]["content"]) == [
        "application/json", "application/x-www-form-urlencoded"]
    origin = next(p for p in track["parameters"] if p["name"] == "Origin")
    assert origin["schema"]["pattern"] == "^[!-~]*$"
    value_rule = {"if": {"required": ["op"], "properties": {"op": {
        "enum": list(limits.AUDIENCE_VALUE_OPS)}}}, "then": {
        "required": ["value"], "properties": {"value": {"not": {"type": "null"}}}}}
    assert value_rule in schemas["AudiencePropertyRule"]["allOf"]


async def test_flywheel_identify_needs_a_user_id_as_the_document_says(
        http: Client, key: str, store: Store) -> None:
    then = build_document()["components"]["schemas"]["FlywheelEvent"]["allOf"][0]["then"]
    assert then["required"] == ["user_id"]
    response = await http.post("/v1/events", json={"event": {"event": "x", "identify": True}},
                               headers={"Authorization": key, "Auth-Type": "api"})
    assert response.status == 400
    assert await response.json() == {
        "error": "Validation failed: user_id is required when identify is true",
        "code": "VALIDATION_ERROR"}
    assert await stored_counts(store) == NOTHING
