"""Audience routes over real HTTP, in the Cueflow style, with the seed's own example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from google.protobuf import timestamp_pb2

from tests.helpers import KeyFactory
from tests.server.helpers import auth as grpc_auth
from tests.server.helpers import event as grpc_event
from tests.server.helpers import track
from trackd.server.auth import ALL_SCOPES
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc

pytestmark = pytest.mark.both_audience_paths

Client = TestClient[Any, Any]
Tracking = tracking_pb2_grpc.TrackingServiceStub
MINUTE = timedelta(minutes=1)

# The Cueflow seed's feature-adoption campaign: viewed the advanced export, never used it.
SEED_AUDIENCE = {"groups": [{"rules": [
    {"event": "advanced_export_viewed", "op": "has_done"},
    {"event": "advanced_export_used", "op": "has_not_done"},
]}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def contact(http: Client, key: str, external_id: str, **fields: Any) -> None:
    resp = await http.post("/api/v1/contacts", headers=auth(key),
                           json={"email": f"{external_id}@example.com",
                                 "externalId": external_id, **fields})
    assert resp.status == 201, await resp.text()


async def event(http: Client, key: str, external_id: str, event_key: str) -> None:
    resp = await http.post("/api/v1/events", headers=auth(key),
                           json={"externalId": external_id, "eventKey": event_key})
    assert resp.status == 201, await resp.text()


async def test_seed_feature_adoption_audience(http: Client, key: str, store: Store) -> None:
    for user in ("viewer", "adopter", "bystander"):
        await contact(http, key, user)
    await event(http, key, "viewer", "advanced_export_viewed")
    await event(http, key, "adopter", "advanced_export_viewed")
    await event(http, key, "adopter", "advanced_export_used")
    await event(http, key, "bystander", "page_viewed")

    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key),
                           json=SEED_AUDIENCE)
    assert resp.status == 200
    assert await resp.json() == {"data": {"externalIds": ["viewer"], "total": 1,
                                          "nextCursor": None}}

    for user, expected in (("viewer", True), ("adopter", False), ("bystander", False)):
        resp = await http.post(f"/api/v1/contacts/{user}/match", headers=auth(key),
                               json=SEED_AUDIENCE)
        assert resp.status == 200
        assert await resp.json() == {"data": {"externalId": user, "matches": expected}}


async def test_invalid_rule_names_its_path(http: Client, key: str) -> None:
    audience = {"groups": [{"rules": [{"event": "a", "op": "has_done"}]},
                           {"rules": [{"event": "b", "op": "done_sometime"}]}]}
    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key), json=audience)
    assert resp.status == 400
    assert await resp.json() == {"error": (
        "Invalid request body: groups[1].rules[0].op must be one of has_done, has_not_done, "
        "count_greater_than, first_done_within, last_done_within")}

    audience = {"groups": [{"rules": [{"event": "a", "op": "last_done_within"}]}]}
    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key), json=audience)
    assert resp.status == 400
    assert await resp.json() == {
        "error": "Invalid request body: groups[0].rules[0].within must be a positive duration"}


async def test_match_of_unknown_contact_is_404(http: Client, key: str) -> None:
    resp = await http.post("/api/v1/contacts/nobody/match", headers=auth(key),
                           json=SEED_AUDIENCE)
    assert resp.status == 404
    assert await resp.json() == {"error": "Contact not found"}


# --- every operator in this API's spelling ------------------------------------------------------

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    """An audience of one group."""
    return {"groups": [{"rules": list(items)}]}


async def evaluate(http: Client, key: str, audience: dict[str, Any], **page: Any) -> Any:
    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key),
                           json={**audience, **page})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def members(http: Client, key: str, audience: dict[str, Any]) -> list[str]:
    data = await evaluate(http, key, audience)
    assert data["total"] == len(data["externalIds"])
    assert data["nextCursor"] is None
    ids: list[str] = data["externalIds"]
    return ids


async def history(tracking: Tracking, key: str, user: str,
                  *occurrences: tuple[str, datetime]) -> None:
    """Events at given times: over gRPC, the API whose events carry any time."""
    for name, when in occurrences:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(when)
        await tracking.TrackEvent(track(grpc_event(name, user=user, timestamp=stamp)),
                                  metadata=grpc_auth(key))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_event_operators(
    http: Client, key: str, tracking: Tracking
) -> None:
    now = datetime.now(UTC)
    for user in ("fresh", "returning", "lapsed", "idle"):
        await contact(http, key, user)
    await history(tracking, key, "fresh", ("login", now - timedelta(days=7) + MINUTE))
    await history(tracking, key, "returning", ("login", now - timedelta(days=7) - MINUTE),
                  ("login", now - timedelta(hours=1)))
    await history(tracking, key, "lapsed", ("login", now - timedelta(days=7) - MINUTE))

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"op": "has_done"}, ["fresh", "lapsed", "returning"]),
        ({"op": "has_not_done"}, ["idle"]),
        ({"op": "count_greater_than", "count": 1}, ["returning"]),
        ({"op": "count_greater_than", "count": 2}, []),
        ({"op": "first_done_within", "within": "7d"}, ["fresh"]),
        ({"op": "first_done_within", "within": "1w"}, ["fresh"]),
        ({"op": "first_done_within", "within": "7d2m"}, ["fresh", "lapsed", "returning"]),
        ({"op": "last_done_within", "within": "7d"}, ["fresh", "returning"]),
        ({"op": "last_done_within", "within": "6d23h58m"}, ["returning"]),
        ({"op": "last_done_within", "within": "168h2m"}, ["fresh", "lapsed", "returning"]),
        ({"op": "last_done_within", "within": "7200s"}, ["returning"]),
    ]
    for rule, expected in cases:
        assert await members(http, key, rules({"event": "login", **rule})) == expected, rule


async def test_since_and_before(http: Client, key: str, tracking: Tracking) -> None:
    for user in ("at_since", "at_before", "inside"):
        await contact(http, key, user)
    await history(tracking, key, "at_since", ("upgrade", T0))
    await history(tracking, key, "at_before", ("upgrade", T0 + timedelta(days=1)))
    await history(tracking, key, "inside", ("upgrade", T0 + timedelta(hours=1)),
                  ("upgrade", T0 + timedelta(hours=2)))
    window = {"since": "2024-03-01T00:00:00Z", "before": "2024-03-02T00:00:00Z"}
    assert await members(http, key, rules({"event": "upgrade", "op": "has_done",
                                               **window})) == ["at_since", "inside"]
    assert await members(http, key, rules({"event": "upgrade", "op": "has_not_done",
                                               **window})) == ["at_before"]
    assert await members(http, key, rules({"event": "upgrade", "op": "count_greater_than",
                                               "count": 1, **window})) == ["inside"]
    # An offset, or no offset at all (UTC), name the same instants.
    assert await members(http, key, rules({
        "event": "upgrade", "op": "has_done", "since": "2024-03-01T01:00:00+01:00",
        "before": "2024-03-01T01:00:00"})) == ["at_since"]


async def test_property_operators(http: Client, key: str) -> None:
    now = datetime.now(UTC)
    await contact(http, key, "ada", name="Ada Lovelace", plan="pro", role="admin",
                  signedUpAt=iso(now - timedelta(days=10)),
                  customAttributes={"workspaceId": "ws_1", "seats": 10, "nickname": "",
                                    "renewal": iso(now - timedelta(days=5)), "score": "10"})
    await contact(http, key, "bob", name="Bob", plan="trial",
                  signedUpAt="2020-01-01T00:00:00Z",
                  customAttributes={"workspace_id": "ws_2", "seats": 3, "score": 20,
                                    "renewal": "2021-06-01T00:00:00Z"})
    await contact(http, key, "cy")
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"property": "plan", "op": "equals", "value": "pro"}, ["ada"]),
        ({"property": "email", "op": "equals", "value": "cy@example.com"}, ["cy"]),
        ({"property": "seats", "op": "equals", "value": 10}, ["ada"]),
        ({"property": "seats", "op": "equals", "value": "10"}, []),
        ({"property": "plan", "op": "not_equals", "value": "pro"}, ["bob", "cy"]),
        ({"property": "plan", "op": "is_set"}, ["ada", "bob"]),
        ({"property": "plan", "op": "is_not_set"}, ["cy"]),
        ({"property": "nickname", "op": "is_not_set"}, ["ada", "bob", "cy"]),
        ({"property": "role", "op": "is_set"}, ["ada"]),
        ({"property": "name", "op": "contains", "value": "lovelace"}, ["ada"]),
        ({"property": "seats", "op": "greater_than", "value": 3}, ["ada"]),
        ({"property": "seats", "op": "less_than", "value": 10.5}, ["ada", "bob"]),
        ({"property": "score", "op": "greater_than", "value": 5}, ["bob"]),
        ({"property": "signedUpAt", "op": "date_within", "within": "30d"}, ["ada"]),
        ({"property": "signed_up_at", "op": "date_before", "before": "2023-01-01T00:00:00Z"},
         ["bob"]),
        ({"property": "renewal", "op": "date_within", "within": "30d"}, ["ada"]),
        ({"property": "renewal", "op": "date_before", "before": "2022-01-01T00:00:00Z"},
         ["bob"]),
        ({"property": "workspace_id", "op": "equals", "value": "ws_1"}, ["ada"]),
        ({"property": "workspaceId", "op": "equals", "value": "ws_2"}, ["bob"]),
        ({"property": "workspaceId", "op": "is_set"}, ["ada", "bob"]),
    ]
    for rule, expected in cases:
        assert await members(http, key, rules(rule)) == expected, rule


async def test_groups_are_ored_and_no_groups_is_nobody(http: Client, key: str) -> None:
    await contact(http, key, "pro", plan="pro")
    await contact(http, key, "trial", plan="trial")
    await contact(http, key, "free")
    audience = {"groups": [
        {"rules": [{"property": "plan", "op": "equals", "value": "pro"}]},
        {"rules": [{"property": "plan", "op": "equals", "value": "trial"},
                   {"event": "anything", "op": "has_not_done"}]},
    ]}
    assert await members(http, key, audience) == ["pro", "trial"]
    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key),
                           json={"groups": []})
    assert await resp.json() == {"data": {"externalIds": [], "total": 0, "nextCursor": None}}
    resp = await http.post("/api/v1/contacts/pro/match", headers=auth(key),
                           json={"groups": []})
    assert await resp.json() == {"data": {"externalId": "pro", "matches": False}}


async def test_pages_by_limit_and_cursor(http: Client, key: str) -> None:
    ids = ["c-5", "c-2", "c-7", "c-1", "c-4", "c-6", "c-3"]
    for external_id in ids:
        await contact(http, key, external_id, plan="pro")
    await contact(http, key, "c-0", plan="free")
    audience = rules({"property": "plan", "op": "equals", "value": "pro"})
    pages = []
    cursor = None
    while True:
        data = await evaluate(http, key, audience, limit=3, cursor=cursor)
        assert data["total"] == 7
        pages.append(data["externalIds"])
        cursor = data["nextCursor"]
        if cursor is None:
            break
    assert pages == [["c-1", "c-2", "c-3"], ["c-4", "c-5", "c-6"], ["c-7"]]
    assert await evaluate(http, key, audience, limit=1000) == {
        "externalIds": sorted(ids), "total": 7, "nextCursor": None}


def bad_request(detail: str) -> dict[str, str]:
    return {"error": f"Invalid request body: {detail}"}


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param({"groups": [{"rules": []}]},
                 bad_request("groups[0].rules must hold at least one rule"), id="empty-group"),
    pytest.param({"groups": [{"rules": [{"event": "a", "op": "has_done"}]}] * 21},
                 bad_request("groups must hold at most 20 groups"), id="21-groups"),
    pytest.param(rules({"event": "a", "op": "first_done_within", "within": "7x"}),
                 bad_request("groups[0].rules[0].within must be a duration such as 7d, 24h "
                             "or 1d12h"), id="bad-duration"),
    pytest.param(rules({"event": "a", "op": "last_done_within", "within": "0d"}),
                 bad_request("groups[0].rules[0].within must be a positive duration"),
                 id="zero-duration"),
    pytest.param(rules({"event": "a", "op": "last_done_within", "within": "99999999999w"}),
                 bad_request("groups[0].rules[0].within is out of range"),
                 id="huge-duration"),
    pytest.param(rules({"event": "a", "op": "last_done_within", "within": "600000w"}),
                 bad_request("groups[0].rules[0].within is out of range"),
                 id="duration-beyond-10000-years"),
    pytest.param(rules({"event": "a", "op": "count_greater_than", "count": -1}),
                 bad_request("groups[0].rules[0].count must be 0 or more"), id="count"),
    pytest.param(rules({"event": "a", "op": "count_greater_than", "count": 2**63}),
                 bad_request("groups[0].rules[0].count is out of range"), id="huge-count"),
    pytest.param(rules({"event": "a", "op": "has_done", "since": "2024-03-02T00:00:00Z",
                        "before": "2024-03-01T00:00:00Z"}),
                 bad_request("groups[0].rules[0].before must be after since"),
                 id="empty-window"),
    pytest.param(rules({"event": "", "op": "has_done"}),
                 bad_request("groups[0].rules[0].event is required"), id="event-name"),
    pytest.param(rules({"property": "plan", "op": "equals"}),
                 bad_request("groups[0].rules[0].value is required"), id="value"),
    pytest.param(rules({"property": "plan", "op": "equals", "value": None}),
                 bad_request("groups[0].rules[0].value is required"), id="null-value"),
    pytest.param(rules({"property": "seats", "op": "greater_than", "value": "10"}),
                 bad_request("groups[0].rules[0].value must be a number"), id="number"),
    pytest.param(rules({"property": "plan", "op": "has_done"}),
                 bad_request("groups[0].rules[0].op must be one of equals, not_equals, is_set, "
                             "is_not_set, contains, greater_than, less_than, date_within, "
                             "date_before"), id="property-op"),
    pytest.param(rules({"property": "d", "op": "date_before"}),
                 bad_request("groups[0].rules[0].before is required"), id="before"),
    pytest.param(rules({"op": "has_done"}),
                 bad_request("groups[0].rules[0] must name an event or a property"),
                 id="neither"),
    pytest.param(rules({"event": "a", "property": "b", "op": "has_done"}),
                 bad_request("groups[0].rules[0] must name an event or a property, not both"),
                 id="both"),
    pytest.param({"groups": [{"rules": [{"event": "a"}]}]},
                 bad_request("groups[0].rules[0].op is required"), id="no-op"),
    pytest.param({"rules": []}, bad_request("groups is required"), id="no-groups"),
    pytest.param({**rules({"event": "a", "op": "has_done"}), "limit": 0},
                 bad_request("limit must be 1 to 1000"), id="limit-0"),
    pytest.param({**rules({"event": "a", "op": "has_done"}), "limit": 1001},
                 bad_request("limit must be 1 to 1000"), id="limit-1001"),
    pytest.param({**rules({"event": "a", "op": "has_done"}), "limit": 2**40},
                 bad_request("limit must be 1 to 1000"), id="limit-huge"),
    pytest.param({**rules({"event": "a", "op": "has_done"}), "cursor": "%%%%"},
                 bad_request("cursor is not a token from a previous page"), id="cursor"),
])
async def test_invalid_request_names_the_field(
    http: Client, key: str, body: dict[str, Any], expected: dict[str, str]
) -> None:
    resp = await http.post("/api/v1/audiences/evaluate", headers=auth(key), json=body)
    assert resp.status == 400
    assert await resp.json() == expected


async def test_scopes_keys_and_tenants(http: Client, key: str,
                                       make_key: KeyFactory) -> None:
    await contact(http, key, "ada")
    await event(http, key, "ada", "advanced_export_viewed")
    track_only = await make_key(scopes=("track:events",))
    for path in ("/api/v1/audiences/evaluate", "/api/v1/contacts/ada/match"):
        resp = await http.post(path, headers=auth(track_only), json=SEED_AUDIENCE)
        assert resp.status == 403
        assert await resp.json() == {"error": "Forbidden: API key missing users:read scope"}
        resp = await http.post(path, json=SEED_AUDIENCE)
        assert resp.status == 401
        assert await resp.json() == {"error": "Unauthorized: missing or malformed "
                                              "Authorization header: expected 'Bearer <key>'"}

    other = await make_key("project-b", scopes=ALL_SCOPES)
    assert await members(http, key, SEED_AUDIENCE) == ["ada"]
    assert await members(http, other, SEED_AUDIENCE) == []
    assert await members(http, other, rules({"event": "x", "op": "has_not_done"})) == []
    resp = await http.post("/api/v1/contacts/ada/match", headers=auth(other),
                           json=SEED_AUDIENCE)
    assert resp.status == 404
    assert await resp.json() == {"error": "Contact not found"}
