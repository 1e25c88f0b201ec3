"""trackd.v1.AudienceService over a real gRPC server and a real database.

Every event operator against hand-built histories (with the edges: exactly N events for
count greater than N, events a minute either side of a within window, events exactly at
``since`` and ``before``, a user with no events), every property operator over profile
fields and traits (camelCase and snake_case), AND/OR composition, invalid rules naming
their path, limits, pagination, MatchUser, identify linking, deletion, tenant isolation
and scopes.

Events carry explicit timestamps. Windows are far from the evaluation's "now" except in
the edge tests, which place events a minute inside or outside a window measured from
``datetime.now(UTC)``, so the test's own running time never decides the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from tests.helpers import KeyFactory
from tests.server.helpers import (
    DOMAIN,
    MISSING_KEY,
    RichError,
    auth,
    batch,
    event,
    invalid,
    rpc_error,
)
from trackd.storage import Store
from trackd.v1 import (
    audiences_pb2,
    audiences_pb2_grpc,
    tracking_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)

pytestmark = pytest.mark.both_audience_paths

Audiences = audiences_pb2_grpc.AudienceServiceStub
Users = users_pb2_grpc.UserServiceStub
Tracking = tracking_pb2_grpc.TrackingServiceStub
ALL_SCOPES = ("track:events", "users:read", "users:write")

HAS_DONE = audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE
HAS_NOT_DONE = audiences_pb2.EVENT_RULE_OPERATOR_HAS_NOT_DONE
COUNT_GT = audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN
FIRST_WITHIN = audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN
LAST_WITHIN = audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN
EQUALS = audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS
NOT_EQUALS = audiences_pb2.PROPERTY_RULE_OPERATOR_NOT_EQUALS
IS_SET = audiences_pb2.PROPERTY_RULE_OPERATOR_IS_SET
IS_NOT_SET = audiences_pb2.PROPERTY_RULE_OPERATOR_IS_NOT_SET
CONTAINS = audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS
GREATER = audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN
LESS = audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN
DATE_WITHIN = audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_WITHIN
DATE_BEFORE = audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_BEFORE

# Far from any "now" this suite runs at: absolute windows around it never meet the clock.
T0 = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@pytest.fixture
def audiences(channel: grpc.aio.Channel) -> Audiences:
    return audiences_pb2_grpc.AudienceServiceStub(channel)


@pytest.fixture
def users(channel: grpc.aio.Channel) -> Users:
    return users_pb2_grpc.UserServiceStub(channel)


# --- building audiences -----------------------------------------------------------------


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def duration(delta: timedelta) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(delta)
    return value


def ev(op: int, name: str, *, count: int = 0, within: timedelta | None = None,
       since: datetime | None = None, before: datetime | None = None) -> audiences_pb2.Rule:
    rule = audiences_pb2.Rule(event=audiences_pb2.EventRule(
        operator=cast(audiences_pb2.EventRuleOperator, op), event_name=name, count=count))
    if within is not None:
        rule.event.within.CopyFrom(duration(within))
    if since is not None:
        rule.event.since.CopyFrom(ts(since))
    if before is not None:
        rule.event.before.CopyFrom(ts(before))
    return rule


_UNSET = object()


def prop(op: int, name: str, value: Any = _UNSET, *, within: timedelta | None = None,
         before: datetime | None = None) -> audiences_pb2.Rule:
    rule = audiences_pb2.Rule(property=audiences_pb2.PropertyRule(
        operator=cast(audiences_pb2.PropertyRuleOperator, op), property=name))
    if value is not _UNSET:
        holder = struct_pb2.Struct()
        holder.update({"v": value})
        rule.property.value.CopyFrom(holder.fields["v"])
    if within is not None:
        rule.property.within.CopyFrom(duration(within))
    if before is not None:
        rule.property.before.CopyFrom(ts(before))
    return rule


def audience(*groups: Sequence[audiences_pb2.Rule]) -> audiences_pb2.Audience:
    """An audience of ``groups``, each a sequence of rules."""
    message = audiences_pb2.Audience()
    for rules in groups:
        message.groups.add().rules.extend(rules)
    return message


def one(*rules: audiences_pb2.Rule) -> audiences_pb2.Audience:
    """An audience of one group."""
    return audience(rules)


# --- writing and reading ------------------------------------------------------------------


async def upsert(users: Users, key: str, external_id: str, *,
                 traits: dict[str, Any] | None = None, signed_up_at: datetime | None = None,
                 anonymous_ids: Sequence[str] = (), **fields: str) -> None:
    message = users_pb2.User(external_id=external_id, anonymous_ids=anonymous_ids)
    for name, value in fields.items():
        setattr(message, name, value)
    if traits is not None:
        message.traits.update(traits)
    if signed_up_at is not None:
        message.signed_up_at.CopyFrom(ts(signed_up_at))
    await users.UpsertUser(users_pb2.UpsertUserRequest(user=message), metadata=auth(key))


async def history(tracking: Tracking, key: str, user: str,
                  *occurrences: tuple[str, datetime]) -> None:
    """Store ``user``'s events, each (name, when)."""
    response = await tracking.BatchTrack(
        batch([event(name, user=user, timestamp=ts(when)) for name, when in occurrences]),
        metadata=auth(key))
    assert response.stored_count == len(occurrences)


async def evaluate(audiences: Audiences, key: str, aud: audiences_pb2.Audience,
                   page_size: int = 0, page_token: str = ""
                   ) -> audiences_pb2.EvaluateAudienceResponse:
    response: audiences_pb2.EvaluateAudienceResponse = await audiences.EvaluateAudience(
        audiences_pb2.EvaluateAudienceRequest(audience=aud, page_size=page_size,
                                              page_token=page_token), metadata=auth(key))
    return response


async def members(audiences: Audiences, key: str, aud: audiences_pb2.Audience) -> list[str]:
    """The whole audience, which must fit in one page."""
    response = await evaluate(audiences, key, aud)
    assert response.next_page_token == ""
    assert response.total_count == len(response.external_ids)
    return list(response.external_ids)


async def match(audiences: Audiences, key: str, external_id: str,
                aud: audiences_pb2.Audience) -> tuple[bool, bool]:
    """(matches, user_exists)."""
    response = await audiences.MatchUser(audiences_pb2.MatchUserRequest(
        external_id=external_id, audience=aud), metadata=auth(key))
    return response.matches, response.user_exists


async def assert_audience(audiences: Audiences, key: str, aud: audiences_pb2.Audience,
                          everyone: Sequence[str], expected: Sequence[str]) -> None:
    """EvaluateAudience returns ``expected`` and MatchUser agrees for each of ``everyone``."""
    assert await members(audiences, key, aud) == sorted(expected)
    for user in everyone:
        assert await match(audiences, key, user, aud) == (user in expected, True), user


def scope_missing(scope: str) -> RichError:
    return RichError(grpc.StatusCode.PERMISSION_DENIED, f"API key missing {scope} scope",
                     error_info=("SCOPE_MISSING", DOMAIN, (("scope", scope),)),
                     detail_types=("ErrorInfo",))


# --- event operators ----------------------------------------------------------------------


async def test_has_done_and_has_not_done(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    everyone = ("doer", "other", "idle")
    for user in everyone:
        await upsert(users, key, user)
    await history(tracking, key, "doer", ("export_used", T0), ("page_viewed", T0))
    await history(tracking, key, "other", ("page_viewed", T0))

    await assert_audience(audiences, key, one(ev(HAS_DONE, "export_used")), everyone,
                          ["doer"])
    await assert_audience(audiences, key, one(ev(HAS_NOT_DONE, "export_used")), everyone,
                          ["idle", "other"])
    await assert_audience(audiences, key, one(ev(HAS_DONE, "page_viewed")), everyone,
                          ["doer", "other"])
    # Names are exact: another event's name, or a case variant, is not the event.
    await assert_audience(audiences, key, one(ev(HAS_DONE, "Export_Used")), everyone, [])


async def test_count_greater_than_needs_more_than_n(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    everyone = ("none", "one", "three", "four")
    for user in everyone:
        await upsert(users, key, user)
    for user, times in (("one", 1), ("three", 3), ("four", 4)):
        await history(tracking, key, user,
                      *(("report_run", T0 + i * MINUTE) for i in range(times)))
    await history(tracking, key, "none", *(("other", T0 + i * MINUTE) for i in range(5)))

    # Exactly N events is not more than N; N + 1 is.
    await assert_audience(audiences, key, one(ev(COUNT_GT, "report_run", count=3)), everyone,
                          ["four"])
    await assert_audience(audiences, key, one(ev(COUNT_GT, "report_run", count=2)), everyone,
                          ["four", "three"])
    await assert_audience(audiences, key, one(ev(COUNT_GT, "report_run", count=0)), everyone,
                          ["four", "one", "three"])
    await assert_audience(audiences, key, one(ev(COUNT_GT, "report_run", count=4)), everyone,
                          [])


async def test_count_greater_than_counts_every_occurrence(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    """Several occurrences at the same instant are several occurrences."""
    await upsert(users, key, "u-1")
    await history(tracking, key, "u-1", *(("ping", T0) for _ in range(3)))
    assert await members(audiences, key, one(ev(COUNT_GT, "ping", count=2))) == ["u-1"]
    assert await members(audiences, key, one(ev(COUNT_GT, "ping", count=3))) == []


async def test_first_and_last_done_within_edges(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    now = datetime.now(UTC)
    inside, outside = now - WEEK + MINUTE, now - WEEK - MINUTE
    everyone = ("fresh", "returning", "lapsed", "never")
    for user in everyone:
        await upsert(users, key, user)
    await history(tracking, key, "fresh", ("login", inside))
    await history(tracking, key, "returning", ("login", outside), ("login", now - DAY))
    await history(tracking, key, "lapsed", ("login", outside), ("login", outside - WEEK))
    await history(tracking, key, "never", ("other", now - DAY))

    await assert_audience(audiences, key, one(ev(FIRST_WITHIN, "login", within=WEEK)),
                          everyone, ["fresh"])
    await assert_audience(audiences, key, one(ev(LAST_WITHIN, "login", within=WEEK)),
                          everyone, ["fresh", "returning"])
    # Two minutes more of window take in the events a minute outside it.
    wider = WEEK + 2 * MINUTE
    await assert_audience(audiences, key, one(ev(FIRST_WITHIN, "login", within=wider)),
                          everyone, ["fresh", "returning"])
    await assert_audience(audiences, key, one(ev(LAST_WITHIN, "login", within=wider)),
                          everyone, ["fresh", "lapsed", "returning"])
    # 25 hours reach only the event of a day ago.
    await assert_audience(audiences, key,
                          one(ev(LAST_WITHIN, "login", within=timedelta(hours=25))),
                          everyone, ["returning"])


async def test_since_counts_and_before_does_not(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    since, before = T0, T0 + DAY
    everyone = ("at_since", "inside", "at_before", "just_early", "mixed", "idle")
    for user in everyone:
        await upsert(users, key, user)
    await history(tracking, key, "at_since", ("upgrade", since))
    await history(tracking, key, "inside", ("upgrade", since + timedelta(hours=12)))
    await history(tracking, key, "at_before", ("upgrade", before))
    await history(tracking, key, "just_early", ("upgrade", since - timedelta(milliseconds=1)))
    await history(tracking, key, "mixed", ("upgrade", since - DAY), ("upgrade", since + MINUTE),
                  ("upgrade", since + 2 * MINUTE), ("upgrade", before + DAY))

    await assert_audience(audiences, key,
                          one(ev(HAS_DONE, "upgrade", since=since, before=before)),
                          everyone, ["at_since", "inside", "mixed"])
    await assert_audience(audiences, key,
                          one(ev(HAS_NOT_DONE, "upgrade", since=since, before=before)),
                          everyone, ["at_before", "idle", "just_early"])
    # Only occurrences in the window count: "mixed" has four, two of them inside.
    await assert_audience(audiences, key,
                          one(ev(COUNT_GT, "upgrade", count=1, since=since, before=before)),
                          everyone, ["mixed"])
    await assert_audience(audiences, key,
                          one(ev(COUNT_GT, "upgrade", count=2, since=since, before=before)),
                          everyone, [])
    # Open-ended windows.
    await assert_audience(audiences, key, one(ev(HAS_DONE, "upgrade", since=before)),
                          everyone, ["at_before", "mixed"])
    await assert_audience(audiences, key, one(ev(HAS_DONE, "upgrade", before=since)),
                          everyone, ["just_early", "mixed"])


async def test_within_looks_only_at_the_window(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    now = datetime.now(UTC)
    await upsert(users, key, "u-1")
    await history(tracking, key, "u-1", ("login", now - 5 * DAY), ("login", now - DAY))
    # First ever is 5 days ago, not within 2 days; the first since 3 days ago is.
    assert await members(audiences, key, one(ev(FIRST_WITHIN, "login", within=2 * DAY))) == []
    assert await members(audiences, key, one(
        ev(FIRST_WITHIN, "login", within=2 * DAY, since=now - 3 * DAY))) == ["u-1"]
    # The last before 3 days ago is 5 days ago, not within 2 days.
    assert await members(audiences, key, one(
        ev(LAST_WITHIN, "login", within=2 * DAY, before=now - 3 * DAY))) == []
    assert await members(audiences, key, one(ev(LAST_WITHIN, "login", within=2 * DAY))) \
        == ["u-1"]


async def test_user_without_events_only_has_not_done(
    audiences: Audiences, users: Users, key: str
) -> None:
    await upsert(users, key, "blank")
    positive = [ev(HAS_DONE, "login"), ev(COUNT_GT, "login", count=0),
                ev(FIRST_WITHIN, "login", within=WEEK), ev(LAST_WITHIN, "login", within=WEEK)]
    for rule in positive:
        assert await members(audiences, key, one(rule)) == []
        assert await match(audiences, key, "blank", one(rule)) == (False, True)
    assert await members(audiences, key, one(ev(HAS_NOT_DONE, "login"))) == ["blank"]
    assert await match(audiences, key, "blank", one(ev(HAS_NOT_DONE, "login"))) == (True, True)


# --- property operators -------------------------------------------------------------------

PEOPLE = ("ada", "bob", "cy", "dee")


@pytest.fixture
async def people(users: Users, key: str) -> datetime:
    """Four profiles; returns the moment they were made (for relative dates)."""
    now = datetime.now(UTC)
    await upsert(users, key, "ada", email="ada@example.com", name="Ada Lovelace", plan="pro",
                 company="Analytical Engines", role="admin", signed_up_at=now - 10 * DAY,
                 traits={"seats": 10, "workspaceId": "ws_1", "tags": ["beta", "vip"],
                         "renewal": (now - 5 * DAY).isoformat(), "score": "10",
                         "nickname": ""})
    await upsert(users, key, "bob", email="bob@example.com", name="Bob", plan="trial",
                 company="Babbage & Co", role="viewer",
                 signed_up_at=datetime(2020, 1, 1, tzinfo=UTC),
                 traits={"seats": 3, "workspace_id": "ws_2", "tags": ["alpha"],
                         "renewal": "2021-06-01T00:00:00Z", "score": 20})
    await upsert(users, key, "cy")
    await upsert(users, key, "dee", email="dee@example.com",
                 traits={"seats": 2.5, "nickname": "Dee", "renewal": "soon", "score": True,
                         "tags": "vip"})
    return now


@pytest.mark.parametrize(("rule", "expected"), [
    # equals: exact, numbers by value, no type coercion.
    pytest.param(prop(EQUALS, "plan", "pro"), ["ada"], id="equals-plan"),
    pytest.param(prop(EQUALS, "email", "bob@example.com"), ["bob"], id="equals-email"),
    pytest.param(prop(EQUALS, "name", "Bob"), ["bob"], id="equals-name"),
    pytest.param(prop(EQUALS, "company", "Babbage & Co"), ["bob"], id="equals-company"),
    pytest.param(prop(EQUALS, "role", "admin"), ["ada"], id="equals-role"),
    pytest.param(prop(EQUALS, "seats", 10), ["ada"], id="equals-number"),
    pytest.param(prop(EQUALS, "seats", 2.5), ["dee"], id="equals-float"),
    pytest.param(prop(EQUALS, "seats", "10"), [], id="equals-string-is-not-number"),
    pytest.param(prop(EQUALS, "score", True), ["dee"], id="equals-bool"),
    pytest.param(prop(EQUALS, "plan", "enterprise"), [], id="equals-nobody"),
    # not equals: an unset property does not equal the value.
    pytest.param(prop(NOT_EQUALS, "plan", "pro"), ["bob", "cy", "dee"], id="not-equals-plan"),
    pytest.param(prop(NOT_EQUALS, "seats", 3), ["ada", "cy", "dee"], id="not-equals-trait"),
    # is set / is not set: missing, null and "" are not set.
    pytest.param(prop(IS_SET, "plan"), ["ada", "bob"], id="is-set-plan"),
    pytest.param(prop(IS_NOT_SET, "plan"), ["cy", "dee"], id="is-not-set-plan"),
    pytest.param(prop(IS_SET, "email"), ["ada", "bob", "dee"], id="is-set-email"),
    pytest.param(prop(IS_NOT_SET, "email"), ["cy"], id="is-not-set-email"),
    pytest.param(prop(IS_SET, "signed_up_at"), ["ada", "bob"], id="is-set-signed-up-at"),
    pytest.param(prop(IS_SET, "nickname"), ["dee"], id="is-set-trait"),
    pytest.param(prop(IS_NOT_SET, "nickname"), ["ada", "bob", "cy"],
                 id="is-not-set-trait-empty-or-missing"),
    # contains: strings case-insensitively, lists by element.
    pytest.param(prop(CONTAINS, "name", "LOVE"), ["ada"], id="contains-string-case"),
    pytest.param(prop(CONTAINS, "company", "co"), ["bob"], id="contains-company"),
    pytest.param(prop(CONTAINS, "email", "@example.com"), ["ada", "bob", "dee"],
                 id="contains-email"),
    pytest.param(prop(CONTAINS, "tags", "vip"), ["ada", "dee"], id="contains-list-or-string"),
    pytest.param(prop(CONTAINS, "tags", "alpha"), ["bob"], id="contains-list-element"),
    pytest.param(prop(CONTAINS, "tags", "alp"), [], id="contains-list-not-substring"),
    # greater / less than: numbers only.
    pytest.param(prop(GREATER, "seats", 3), ["ada"], id="greater-than"),
    pytest.param(prop(GREATER, "seats", 2), ["ada", "bob", "dee"], id="greater-than-float"),
    pytest.param(prop(LESS, "seats", 3), ["dee"], id="less-than"),
    pytest.param(prop(LESS, "seats", 3.5), ["bob", "dee"], id="less-than-fraction"),
    pytest.param(prop(GREATER, "score", 5), ["bob"], id="greater-than-skips-string-and-bool"),
    pytest.param(prop(LESS, "score", 100), ["bob"], id="less-than-skips-string-and-bool"),
    # date within / before: on signed_up_at and on ISO-string traits.
    pytest.param(prop(DATE_WITHIN, "signed_up_at", within=30 * DAY), ["ada"],
                 id="date-within-signed-up-at"),
    pytest.param(prop(DATE_WITHIN, "signed_up_at", within=5 * DAY), [],
                 id="date-within-too-short"),
    pytest.param(prop(DATE_BEFORE, "signed_up_at", before=datetime(2023, 1, 1, tzinfo=UTC)),
                 ["bob"], id="date-before-signed-up-at"),
    pytest.param(prop(DATE_WITHIN, "renewal", within=30 * DAY), ["ada"],
                 id="date-within-iso-trait"),
    pytest.param(prop(DATE_BEFORE, "renewal", before=datetime(2022, 1, 1, tzinfo=UTC)),
                 ["bob"], id="date-before-iso-trait"),
    # camelCase and snake_case spellings.
    pytest.param(prop(EQUALS, "workspace_id", "ws_1"), ["ada"], id="snake-rule-camel-trait"),
    pytest.param(prop(EQUALS, "workspaceId", "ws_2"), ["bob"], id="camel-rule-snake-trait"),
    pytest.param(prop(IS_SET, "workspaceId"), ["ada", "bob"], id="camel-is-set"),
    pytest.param(prop(IS_NOT_SET, "workspace_id"), ["cy", "dee"], id="snake-is-not-set"),
    pytest.param(prop(DATE_WITHIN, "signedUpAt", within=30 * DAY), ["ada"], id="signedUpAt"),
    pytest.param(prop(DATE_WITHIN, "signupDate", within=30 * DAY), ["ada"], id="signupDate"),
    pytest.param(prop(DATE_BEFORE, "signup_date", before=datetime(2023, 1, 1, tzinfo=UTC)),
                 ["bob"], id="signup_date"),
])
async def test_property_operators(
    audiences: Audiences, key: str, people: datetime, rule: audiences_pb2.Rule,
    expected: list[str],
) -> None:
    await assert_audience(audiences, key, one(rule), PEOPLE, expected)


async def test_trait_set_to_null_is_not_set(
    audiences: Audiences, users: Users, key: str, store: Store
) -> None:
    await upsert(users, key, "u-1", traits={"nickname": "Ace", "seats": 4})
    assert await members(audiences, key, one(prop(IS_SET, "nickname"))) == ["u-1"]
    await upsert(users, key, "u-1", traits={"nickname": None})
    doc = await store.db["users"].find_one({"project_id": "acme", "external_id": "u-1"})
    assert doc is not None
    assert doc["traits"] == {"seats": 4}  # null removes the trait
    assert await members(audiences, key, one(prop(IS_SET, "nickname"))) == []
    assert await members(audiences, key, one(prop(IS_NOT_SET, "nickname"))) == ["u-1"]
    assert await members(audiences, key, one(prop(NOT_EQUALS, "nickname", "Ace"))) == ["u-1"]
    assert await members(audiences, key, one(prop(EQUALS, "nickname", "Ace"))) == []


async def test_profile_field_name_found_among_traits(
    audiences: Audiences, users: Users, key: str
) -> None:
    """A profile field name a client sent as a trait (Databuddy's identify traits) is
    still found; a first-class value wins over it."""
    await upsert(users, key, "trait-plan", traits={"plan": "enterprise"})
    await upsert(users, key, "field-plan", plan="pro", traits={"plan": "enterprise"})
    assert await members(audiences, key, one(prop(EQUALS, "plan", "enterprise"))) \
        == ["trait-plan"]
    assert await members(audiences, key, one(prop(EQUALS, "plan", "pro"))) == ["field-plan"]


# --- composition --------------------------------------------------------------------------


async def test_and_within_group_or_across_groups(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    everyone = ("viewer", "adopter", "pro_viewer", "pro_idle", "idle")
    for user in everyone:
        if user.startswith("pro"):
            await upsert(users, key, user, plan="pro")
        else:
            await upsert(users, key, user)
    for user in ("viewer", "adopter", "pro_viewer"):
        await history(tracking, key, user, ("export_viewed", T0))
    await history(tracking, key, "adopter", ("export_used", T0 + MINUTE))

    seed = [ev(HAS_DONE, "export_viewed"), ev(HAS_NOT_DONE, "export_used")]
    await assert_audience(audiences, key, audience(seed), everyone, ["pro_viewer", "viewer"])
    # AND with a property rule narrows.
    await assert_audience(audiences, key, audience([*seed, prop(EQUALS, "plan", "pro")]),
                          everyone, ["pro_viewer"])
    # OR with a second group widens; a user in both groups appears once.
    await assert_audience(audiences, key, audience(seed, [prop(EQUALS, "plan", "pro")]),
                          everyone, ["pro_idle", "pro_viewer", "viewer"])
    await assert_audience(audiences, key,
                          audience([ev(HAS_DONE, "export_used")], [ev(HAS_DONE, "nothing")]),
                          everyone, ["adopter"])
    # Contradictory rules in one group match nobody.
    await assert_audience(audiences, key, audience([ev(HAS_DONE, "export_viewed"),
                                                    ev(HAS_NOT_DONE, "export_viewed")]),
                          everyone, [])


@pytest.mark.parametrize("lookup", ["by id", "in chunks", "by scanning the project's users"])
async def test_profile_lookup_by_id_in_chunks_or_by_scan_agree(
    audiences: Audiences, users: Users, tracking: Tracking, key: str,
    monkeypatch: pytest.MonkeyPatch, lookup: str,
) -> None:
    # Profiles are looked up by id in chunks, and read wholesale past a size; these limits
    # send even a few users down each path.
    if lookup == "in chunks":
        monkeypatch.setattr("trackd.storage.audiences.IN_LOOKUP_LIMIT", 1)
    elif lookup != "by id":
        monkeypatch.setattr("trackd.storage.audiences.SCAN_ABOVE", 0)
    everyone = ("viewer", "adopter", "pro_viewer")
    for user in everyone:
        await upsert(users, key, user, plan="pro" if user.startswith("pro") else "free")
    for user in (*everyone, "never_upserted"):
        await history(tracking, key, user, ("export_viewed", T0))
    await history(tracking, key, "adopter", ("export_used", T0 + MINUTE))

    seed = [ev(HAS_DONE, "export_viewed"), ev(HAS_NOT_DONE, "export_used")]
    await assert_audience(audiences, key, audience(seed), everyone, ["pro_viewer", "viewer"])
    await assert_audience(audiences, key, audience([*seed, prop(EQUALS, "plan", "pro")]),
                          everyone, ["pro_viewer"])


async def test_audience_without_groups_matches_nobody(
    audiences: Audiences, users: Users, key: str
) -> None:
    await upsert(users, key, "u-1")
    response = await evaluate(audiences, key, audiences_pb2.Audience())
    assert response == audiences_pb2.EvaluateAudienceResponse(total_count=0)
    assert await match(audiences, key, "u-1", audiences_pb2.Audience()) == (False, True)


@pytest.mark.parametrize(("aud", "expected"), [
    pytest.param(
        audience([ev(HAS_DONE, "a")], [ev(0, "b")]),
        invalid("audience.groups[1].rules[0].event.operator", "is required"), id="operator"),
    pytest.param(
        audience([prop(0, "plan", "pro")]),
        invalid("audience.groups[0].rules[0].property.operator", "is required"),
        id="property-operator"),
    pytest.param(
        audience([ev(HAS_DONE, "a")], [ev(99, "b")]),
        invalid("audience.groups[1].rules[0].event.operator", "is required"),
        id="unknown-operator"),
    pytest.param(
        audience([ev(HAS_DONE, "")]),
        invalid("audience.groups[0].rules[0].event.event_name", "is required"), id="name"),
    pytest.param(
        audience([ev(HAS_DONE, "a"), ev(COUNT_GT, "b", count=-1)]),
        invalid("audience.groups[0].rules[1].event.count", "must be 0 or more"), id="count"),
    pytest.param(
        audience([ev(LAST_WITHIN, "a")]),
        invalid("audience.groups[0].rules[0].event.within", "must be a positive duration"),
        id="within-missing"),
    pytest.param(
        audience([ev(FIRST_WITHIN, "a", within=timedelta(0))]),
        invalid("audience.groups[0].rules[0].event.within", "must be a positive duration"),
        id="within-zero"),
    pytest.param(
        audience([ev(HAS_DONE, "a", since=T0, before=T0)]),
        invalid("audience.groups[0].rules[0].event.before", "must be after since"),
        id="empty-window"),
    pytest.param(
        audience([prop(EQUALS, "plan")]),
        invalid("audience.groups[0].rules[0].property.value", "is required"), id="value"),
    pytest.param(
        audience([prop(GREATER, "seats", "10")]),
        invalid("audience.groups[0].rules[0].property.value", "must be a number"),
        id="numeric-value"),
    pytest.param(
        audience([prop(IS_SET, "")]),
        invalid("audience.groups[0].rules[0].property.property", "is required"),
        id="property-name"),
    pytest.param(
        audience([prop(DATE_WITHIN, "signed_up_at")]),
        invalid("audience.groups[0].rules[0].property.within", "must be a positive duration"),
        id="date-within"),
    pytest.param(
        audience([prop(DATE_BEFORE, "signed_up_at")]),
        invalid("audience.groups[0].rules[0].property.before", "is required"),
        id="date-before"),
    pytest.param(
        audience([ev(HAS_DONE, "a")], []),
        invalid("audience.groups[1].rules", "must hold at least one rule"), id="empty-group"),
    pytest.param(
        audience([audiences_pb2.Rule()]),
        invalid("audience.groups[0].rules[0]", "must be an event or a property rule"),
        id="empty-rule"),
    pytest.param(
        audience(*([ev(HAS_DONE, "a")] for _ in range(21))),
        invalid("audience.groups", "must hold at most 20 groups"), id="21-groups"),
    pytest.param(
        audience([ev(HAS_DONE, f"e{i}") for i in range(21)]),
        invalid("audience.groups[0].rules", "must hold at most 20 rules"), id="21-rules"),
    pytest.param(
        audience([audiences_pb2.Rule(event=audiences_pb2.EventRule(
            operator=LAST_WITHIN, event_name="a",
            within=duration_pb2.Duration(seconds=10**15)))]),
        invalid("audience.groups[0].rules[0].event.within", "is out of range"),
        id="within-out-of-range"),
    pytest.param(
        audience([audiences_pb2.Rule(property=audiences_pb2.PropertyRule(
            operator=DATE_WITHIN, property="signed_up_at",
            within=duration_pb2.Duration(seconds=-10**15)))]),
        invalid("audience.groups[0].rules[0].property.within", "is out of range"),
        id="date-within-out-of-range"),
    pytest.param(
        audience([audiences_pb2.Rule(event=audiences_pb2.EventRule(
            operator=HAS_DONE, event_name="a", since=timestamp_pb2.Timestamp(seconds=-10**12),
            before=timestamp_pb2.Timestamp(seconds=10**13)))]),
        invalid("audience.groups[0].rules[0].event.since", "is out of range", more=(
            ("audience.groups[0].rules[0].event.before", "is out of range"),)),
        id="window-out-of-range"),
    pytest.param(
        audience([audiences_pb2.Rule(property=audiences_pb2.PropertyRule(
            operator=DATE_BEFORE, property="signed_up_at",
            before=timestamp_pb2.Timestamp(seconds=0, nanos=-1)))]),
        invalid("audience.groups[0].rules[0].property.before", "is out of range"),
        id="date-before-out-of-range"),
    pytest.param(
        audience([ev(0, "a")], [], [prop(LESS, "x", "y")]),
        invalid("audience.groups[0].rules[0].event.operator", "is required", more=(
            ("audience.groups[1].rules", "must hold at least one rule"),
            ("audience.groups[2].rules[0].property.value", "must be a number"))),
        id="every-violation"),
])
async def test_invalid_audience_names_the_rule(
    audiences: Audiences, users: Users, key: str, aud: audiences_pb2.Audience,
    expected: RichError,
) -> None:
    await upsert(users, key, "u-1")
    assert await rpc_error(evaluate(audiences, key, aud)) == expected
    assert await rpc_error(audiences.MatchUser(audiences_pb2.MatchUserRequest(
        external_id="u-1", audience=aud), metadata=auth(key))) == expected


async def test_limits_are_inclusive(audiences: Audiences, users: Users, key: str) -> None:
    await upsert(users, key, "u-1", plan="pro")
    twenty_groups = audience(*([prop(EQUALS, "plan", "pro")] for _ in range(20)))
    assert await members(audiences, key, twenty_groups) == ["u-1"]
    twenty_rules = one(*(prop(EQUALS, "plan", "pro") for _ in range(20)))
    assert await members(audiences, key, twenty_rules) == ["u-1"]


async def test_windows_reaching_before_year_one_match_all_history(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    """A valid Duration longer than the calendar so far is the whole past, not an error."""
    ages = timedelta(days=9000 * 365)
    await upsert(users, key, "old", signed_up_at=datetime(1900, 1, 1, tzinfo=UTC))
    await history(tracking, key, "old", ("login", datetime(1950, 1, 1, tzinfo=UTC)))
    for rule in (ev(FIRST_WITHIN, "login", within=ages), ev(LAST_WITHIN, "login", within=ages),
                 prop(DATE_WITHIN, "signed_up_at", within=ages)):
        assert await members(audiences, key, one(rule)) == ["old"]
        assert await match(audiences, key, "old", one(rule)) == (True, True)


# --- pagination ---------------------------------------------------------------------------


async def test_pages_follow_the_token_in_ascending_order(
    audiences: Audiences, users: Users, key: str
) -> None:
    ids = ["u-07", "u-03", "u-10", "u-01", "u-05", "u-09", "u-02", "u-08"]
    for external_id in ids:
        await upsert(users, key, external_id, plan="pro")
    await upsert(users, key, "u-04", plan="free")
    aud = one(prop(EQUALS, "plan", "pro"))

    pages: list[list[str]] = []
    token = ""
    while True:
        response = await evaluate(audiences, key, aud, page_size=3, page_token=token)
        assert response.total_count == 8
        pages.append(list(response.external_ids))
        token = response.next_page_token
        if not token:
            break
    assert pages == [["u-01", "u-02", "u-03"], ["u-05", "u-07", "u-08"], ["u-09", "u-10"]]

    # A page size that divides the total: the last full page says there is no more.
    first = await evaluate(audiences, key, aud, page_size=4)
    second = await evaluate(audiences, key, aud, page_size=4, page_token=first.next_page_token)
    assert list(first.external_ids) == sorted(ids)[:4]
    assert first.next_page_token != ""
    assert (list(second.external_ids), second.next_page_token) == (sorted(ids)[4:], "")
    # 0 means the default (100): everything in one page.
    response = await evaluate(audiences, key, aud, page_size=0)
    assert response == audiences_pb2.EvaluateAudienceResponse(
        external_ids=sorted(ids), total_count=8)


async def test_page_token_is_a_position_not_a_snapshot(
    audiences: Audiences, users: Users, key: str
) -> None:
    for external_id in ("b", "d", "f"):
        await upsert(users, key, external_id, plan="pro")
    aud = one(prop(EQUALS, "plan", "pro"))
    first = await evaluate(audiences, key, aud, page_size=2)
    assert list(first.external_ids) == ["b", "d"]
    await upsert(users, key, "a", plan="pro")  # joins before the cursor: not repeated
    await upsert(users, key, "e", plan="pro")  # joins after it: on the next page
    second = await evaluate(audiences, key, aud, page_size=2, page_token=first.next_page_token)
    assert (list(second.external_ids), second.total_count, second.next_page_token) == (
        ["e", "f"], 5, "")


@pytest.mark.parametrize("token", ["not-a-token", "%%%%", "zzzz", "====", "@"])
async def test_invalid_page_token(
    audiences: Audiences, users: Users, key: str, token: str
) -> None:
    await upsert(users, key, "u-1")
    error = await rpc_error(evaluate(audiences, key, one(ev(HAS_NOT_DONE, "a")),
                                     page_token=token))
    assert error == invalid("page_token", "is not a token from a previous page")


@pytest.mark.parametrize("size", [-1, 1001])
async def test_invalid_page_size(audiences: Audiences, key: str, size: int) -> None:
    error = await rpc_error(evaluate(audiences, key, one(ev(HAS_DONE, "a")), page_size=size))
    assert error == invalid("page_size", "must be 0 to 1000")


# --- MatchUser ------------------------------------------------------------------------------


async def test_match_user(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    await upsert(users, key, "in", plan="pro")
    await upsert(users, key, "out", plan="free")
    await history(tracking, key, "in", ("export_viewed", T0))
    await history(tracking, key, "out", ("export_viewed", T0))
    aud = one(ev(HAS_DONE, "export_viewed"), prop(EQUALS, "plan", "pro"))
    assert await audiences.MatchUser(audiences_pb2.MatchUserRequest(
        external_id="in", audience=aud), metadata=auth(key)) == \
        audiences_pb2.MatchUserResponse(matches=True, user_exists=True)
    assert await audiences.MatchUser(audiences_pb2.MatchUserRequest(
        external_id="out", audience=aud), metadata=auth(key)) == \
        audiences_pb2.MatchUserResponse(matches=False, user_exists=True)
    # Unknown users, even with events of their own, do not exist and do not match.
    await history(tracking, key, "ghost", ("export_viewed", T0))
    for unknown in ("ghost", "nobody"):
        assert await audiences.MatchUser(audiences_pb2.MatchUserRequest(
            external_id=unknown, audience=one(ev(HAS_DONE, "export_viewed"))),
            metadata=auth(key)) == audiences_pb2.MatchUserResponse(
                matches=False, user_exists=False)
        assert await match(audiences, key, unknown, one(ev(HAS_NOT_DONE, "x"))) \
            == (False, False)


async def test_match_user_needs_an_external_id(audiences: Audiences, key: str) -> None:
    error = await rpc_error(audiences.MatchUser(audiences_pb2.MatchUserRequest(
        audience=one(ev(HAS_DONE, "a"))), metadata=auth(key)))
    assert error == invalid("external_id", "is required")


# --- who events belong to -------------------------------------------------------------------


async def test_buffered_events_count_from_the_upsert(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    await history(tracking, key, "late", *(("login", T0 + i * MINUTE) for i in range(3)))
    aud = one(ev(COUNT_GT, "login", count=2))
    assert await members(audiences, key, aud) == []  # no profile, no match
    await upsert(users, key, "late")
    assert await members(audiences, key, aud) == ["late"]
    assert await match(audiences, key, "late", aud) == (True, True)


async def test_anonymous_events_count_after_linking(
    audiences: Audiences, users: Users, tracking: Tracking, key: str
) -> None:
    await tracking.BatchTrack(batch([
        event("pricing_viewed", user="", anonymous_id="anon-1", timestamp=ts(T0 + i * MINUTE))
        for i in range(2)]), metadata=auth(key))
    await upsert(users, key, "u-1")
    aud = one(ev(COUNT_GT, "pricing_viewed", count=1))
    assert await members(audiences, key, aud) == []
    await upsert(users, key, "u-1", anonymous_ids=["anon-1"])
    assert await members(audiences, key, aud) == ["u-1"]
    assert await match(audiences, key, "u-1", aud) == (True, True)


async def test_deleted_user_never_matches_again(
    audiences: Audiences, users: Users, tracking: Tracking, key: str, store: Store
) -> None:
    await upsert(users, key, "gone", plan="pro")
    await history(tracking, key, "gone", ("login", T0))
    aud = one(ev(HAS_DONE, "login"))
    assert await members(audiences, key, aud) == ["gone"]
    await users.DeleteUser(users_pb2.DeleteUserRequest(external_id="gone"), metadata=auth(key))
    assert await store.db["events"].count_documents({"user_id": "gone"}) == 0
    assert await members(audiences, key, aud) == []
    assert await members(audiences, key, one(prop(EQUALS, "plan", "pro"))) == []
    # Not even as a user without the event: the roster of users no longer names them.
    assert await members(audiences, key, one(ev(HAS_NOT_DONE, "login"))) == []
    assert await match(audiences, key, "gone", aud) == (False, False)
    # Re-created with the same id, the user starts with an empty history.
    await upsert(users, key, "gone")
    assert await members(audiences, key, aud) == []
    assert await members(audiences, key, one(ev(HAS_NOT_DONE, "login"))) == ["gone"]
    assert await match(audiences, key, "gone", aud) == (False, True)


# The roster is what the events path reads; the index reads the profiles themselves.
@pytest.mark.parametrize("audience_path", ["events"])
async def test_users_from_before_the_roster_are_enrolled_at_start_up(
    audiences: Audiences, users: Users, key: str, store: Store
) -> None:
    await upsert(users, key, "enrolled")
    # A profile written before trackd kept a roster (straight into the collection), and
    # no roster at all: the start-up check builds it from the profiles.
    await store.db["users"].insert_one({"project_id": "acme", "external_id": "legacy",
                                        "created_at": T0, "updated_at": T0})
    await store.db["user_roster"].drop()
    assert await members(audiences, key, one(ev(HAS_NOT_DONE, "login"))) == []

    await store.roster.ensure()

    assert await members(audiences, key, one(ev(HAS_NOT_DONE, "login"))) == [
        "enrolled", "legacy"]
    await store.roster.ensure()  # a second start-up changes nothing
    assert await store.roster.ids("acme") == {"enrolled", "legacy"}


# --- tenants and keys -----------------------------------------------------------------------


async def test_projects_are_isolated(
    audiences: Audiences, users: Users, tracking: Tracking, make_key: KeyFactory
) -> None:
    key_a = await make_key("project-a", ALL_SCOPES)
    key_b = await make_key("project-b", ALL_SCOPES)
    await upsert(users, key_a, "only-a", plan="pro")
    await upsert(users, key_a, "both", plan="pro")
    await upsert(users, key_b, "both")
    await history(tracking, key_a, "only-a", ("login", T0))
    await history(tracking, key_a, "both", ("login", T0))

    assert await members(audiences, key_a, one(ev(HAS_DONE, "login"))) == ["both", "only-a"]
    assert await members(audiences, key_b, one(ev(HAS_DONE, "login"))) == []
    assert await members(audiences, key_b, one(prop(EQUALS, "plan", "pro"))) == []
    assert await members(audiences, key_b, one(ev(HAS_NOT_DONE, "login"))) == ["both"]
    assert await match(audiences, key_b, "only-a", one(ev(HAS_DONE, "login"))) \
        == (False, False)
    assert await match(audiences, key_b, "both", one(ev(HAS_DONE, "login"))) == (False, True)


async def test_scopes_and_keys(
    audiences: Audiences, make_key: KeyFactory
) -> None:
    aud = one(ev(HAS_DONE, "login"))
    track_only = await make_key("acme", ("track:events",))
    write_only = await make_key("acme", ("users:write",))
    for scoped in (track_only, write_only):
        assert await rpc_error(evaluate(audiences, scoped, aud)) == scope_missing("users:read")
        assert await rpc_error(audiences.MatchUser(audiences_pb2.MatchUserRequest(
            external_id="u-1", audience=aud), metadata=auth(scoped))) \
            == scope_missing("users:read")
    read_only = await make_key("acme", ("users:read",))
    assert await evaluate(audiences, read_only, aud) == \
        audiences_pb2.EvaluateAudienceResponse()
    assert await rpc_error(audiences.EvaluateAudience(
        audiences_pb2.EvaluateAudienceRequest(audience=aud))) == MISSING_KEY
