"""trackd.v1.UserService on its own, over a real gRPC server and a real database.

What each RPC stores and answers, the optional-field and trait semantics, batch results
by index, event history (paging, and events buffered before the user existed), the
unknown-user policy of TrackEvent, scopes, tenant isolation and idempotency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.helpers import KeyFactory, stored_events
from tests.server.helpers import (
    DOMAIN,
    MISSING_KEY,
    RichError,
    auth,
    batch,
    event,
    invalid,
    rpc_error,
    track,
)
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, users_pb2, users_pb2_grpc

Users = users_pb2_grpc.UserServiceStub
Tracking = tracking_pb2_grpc.TrackingServiceStub
ALL_SCOPES = ("track:events", "users:read", "users:write")


@pytest.fixture
def users(channel: grpc.aio.Channel) -> Users:
    return users_pb2_grpc.UserServiceStub(channel)


def user(external_id: str = "u-1", *, traits: dict[str, Any] | None = None,
         **fields: Any) -> users_pb2.User:
    message = users_pb2.User(external_id=external_id, **fields)
    if traits is not None:
        message.traits.update(traits)
    return message


def upsert(message: users_pb2.User, idempotency_key: str = "") -> users_pb2.UpsertUserRequest:
    return users_pb2.UpsertUserRequest(user=message, idempotency_key=idempotency_key)


def not_found(external_id: str = "", email: str = "",
              metadata: tuple[tuple[str, str], ...] = ()) -> RichError:
    which = f"external id {external_id!r}" if external_id else f"email {email!r}"
    return RichError(grpc.StatusCode.NOT_FOUND, f"no user with {which}",
                     error_info=("USER_NOT_FOUND", DOMAIN, metadata),
                     detail_types=("ErrorInfo",))


def scope_missing(scope: str) -> RichError:
    return RichError(grpc.StatusCode.PERMISSION_DENIED, f"API key missing {scope} scope",
                     error_info=("SCOPE_MISSING", DOMAIN, (("scope", scope),)),
                     detail_types=("ErrorInfo",))


async def user_docs(store: Store, project: str = "acme") -> list[dict[str, Any]]:
    cursor = store.db["users"].find({"project_id": project}, {"_id": 0}).sort("external_id", 1)
    return [doc async for doc in cursor]


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


# --- UpsertUser ---------------------------------------------------------------------------


async def test_upsert_creates_then_updates_in_place(
    users: Users, store: Store, key: str
) -> None:
    created = await users.UpsertUser(upsert(user(
        email="ada@example.com", name="Ada", plan="trial", signed_up_at=ts(1_700_000_000),
        traits={"seats": 5})), metadata=auth(key))
    assert created.created is True
    (doc,) = await user_docs(store)
    assert {k: v for k, v in doc.items() if k not in ("created_at", "updated_at")} == {
        "project_id": "acme", "external_id": "u-1", "email": "ada@example.com",
        "emails": ["ada@example.com"], "name": "Ada", "plan": "trial",
        "signed_up_at": datetime.fromtimestamp(1_700_000_000, UTC), "traits": {"seats": 5}}
    assert created.user.external_id == "u-1"
    assert created.user.email == "ada@example.com"
    assert created.user.created_at.ToDatetime(tzinfo=UTC) == doc["created_at"]
    assert created.user.updated_at.ToDatetime(tzinfo=UTC) == doc["updated_at"]

    updated = await users.UpsertUser(upsert(user(plan="pro")), metadata=auth(key))
    assert updated.created is False
    (doc,) = await user_docs(store)
    assert doc["plan"] == "pro"
    assert doc["name"] == "Ada"
    assert updated.user.plan == "pro"
    assert updated.user.name == "Ada"
    assert updated.user.created_at == created.user.created_at


async def test_unset_fields_stay_and_empty_strings_clear(
    users: Users, store: Store, key: str
) -> None:
    await users.UpsertUser(upsert(user(email="ada@example.com", phone="+1 555", name="Ada",
                                       company="ACME", role="admin")), metadata=auth(key))
    response = await users.UpsertUser(upsert(user(name="", phone="", role="owner")),
                                      metadata=auth(key))
    (doc,) = await user_docs(store)
    assert "name" not in doc
    assert "phone" not in doc  # cleared, and not re-promoted from `phones`
    assert doc["phones"] == ["+1 555"]
    assert doc["company"] == "ACME"
    assert doc["role"] == "owner"
    assert doc["email"] == "ada@example.com"
    assert not response.user.HasField("name")
    assert not response.user.HasField("phone")
    assert response.user.company == "ACME"

    # A later request that does not mention the phone leaves it cleared.
    await users.UpsertUser(upsert(user(plan="pro")), metadata=auth(key))
    (doc,) = await user_docs(store)
    assert "phone" not in doc
    assert doc["plan"] == "pro"


async def test_traits_merge_key_by_key_and_null_removes(
    users: Users, store: Store, key: str
) -> None:
    await users.UpsertUser(upsert(user(traits={"a": 1, "b": "x", "c": {"d": [1, 2]}})),
                           metadata=auth(key))
    response = await users.UpsertUser(upsert(user(traits={"b": None, "e": True, "a": 2.5})),
                                      metadata=auth(key))
    (doc,) = await user_docs(store)
    assert doc["traits"] == {"a": 2.5, "c": {"d": [1, 2]}, "e": True}
    assert dict(response.user.traits) == {"a": 2.5, "c": {"d": [1.0, 2.0]}, "e": True}


async def test_first_email_becomes_primary_and_emails_are_a_set(
    users: Users, store: Store, key: str
) -> None:
    response = await users.UpsertUser(
        upsert(user(emails=["a@example.com", "b@example.com"], phones=["+1", "+2"])),
        metadata=auth(key))
    assert response.user.email == "a@example.com"
    assert response.user.phone == "+1"
    await users.UpsertUser(upsert(user(emails=["c@example.com", "a@example.com"])),
                           metadata=auth(key))
    (doc,) = await user_docs(store)
    assert doc["email"] == "a@example.com"
    assert doc["emails"] == ["a@example.com", "b@example.com", "c@example.com"]
    assert doc["phone"] == "+1"
    # Setting a primary adds it to the set and replaces the primary.
    await users.UpsertUser(upsert(user(email="d@example.com")), metadata=auth(key))
    (doc,) = await user_docs(store)
    assert doc["email"] == "d@example.com"
    assert doc["emails"] == ["a@example.com", "b@example.com", "c@example.com",
                             "d@example.com"]


async def test_upsert_validation_names_the_field(users: Users, store: Store, key: str) -> None:
    cases = [
        (user(""), invalid("user.external_id", "is required")),
        (user("x" * 257), invalid("user.external_id", "must be at most 256 characters")),
        (user(email="nope"), invalid("user.email", "must be an email address")),
        (user(emails=["ok@example.com", "nope"]),
         invalid("user.emails[1]", "must be an email address")),
        (user(traits={"a.b": 1}),
         invalid("user.traits.a.b", "trait keys must be non-empty and contain no '.', '$' or NUL")),
        (user(name="x" * 1025), invalid("user.name", "must be at most 1024 characters")),
    ]
    for message, expected in cases:
        assert await rpc_error(users.UpsertUser(upsert(message), metadata=auth(key))) == expected
    assert await user_docs(store) == []


async def test_upsert_is_idempotent(users: Users, store: Store, key: str) -> None:
    first = await users.UpsertUser(upsert(user(plan="trial"), "k-1"), metadata=auth(key))
    again = await users.UpsertUser(upsert(user(plan="trial"), "k-1"), metadata=auth(key))
    assert again == first
    assert again.created is True  # the original response, replayed
    (doc,) = await user_docs(store)
    assert doc["updated_at"] == first.user.updated_at.ToDatetime(tzinfo=UTC)

    error = await rpc_error(users.UpsertUser(upsert(user(plan="pro"), "k-1"),
                                             metadata=auth(key)))
    assert error == invalid("idempotency_key", "was already used with a different request",
                            reason="IDEMPOTENCY_KEY_REUSE")
    (doc,) = await user_docs(store)
    assert doc["plan"] == "trial"


# --- BatchUpsertUsers ---------------------------------------------------------------------


async def test_batch_upsert_stores_valid_and_reports_invalid_by_index(
    users: Users, store: Store, key: str
) -> None:
    await users.UpsertUser(upsert(user("u-0", plan="trial")), metadata=auth(key))
    request = users_pb2.BatchUpsertUsersRequest(users=[
        user("u-0", plan="pro"),
        user(""),
        user("u-2", email="bad"),
        user("u-3", emails=["c@example.com"]),
        user("u-4", traits={"$x": 1}),
    ])
    response = await users.BatchUpsertUsers(request, metadata=auth(key))
    assert response == users_pb2.BatchUpsertUsersResponse(
        accepted_count=2, rejected_count=3, created_count=1, errors=[
            users_pb2.RecordError(index=1, code="invalid_argument", field="external_id",
                                  message="external_id is required",
                                  description="is required"),
            users_pb2.RecordError(index=2, code="invalid_argument", field="email",
                                  message="email must be an email address",
                                  description="must be an email address"),
            users_pb2.RecordError(
                index=4, code="invalid_argument", field="traits.$x",
                message="traits.$x trait keys must be non-empty and contain no '.', '$' or NUL",
                description="trait keys must be non-empty and contain no '.', '$' or NUL"),
        ])
    docs = {doc["external_id"]: doc for doc in await user_docs(store)}
    assert sorted(docs) == ["u-0", "u-3"]
    assert docs["u-0"]["plan"] == "pro"
    assert docs["u-3"]["email"] == "c@example.com"


async def test_batch_upsert_bounds(users: Users, store: Store, key: str) -> None:
    for count in (0, 1001):
        request = users_pb2.BatchUpsertUsersRequest(users=[user(f"u-{i}") for i in range(count)])
        error = await rpc_error(users.BatchUpsertUsers(request, metadata=auth(key)))
        assert error == invalid("users", f"a batch holds 1 to 1000 users, got {count}")
    assert await user_docs(store) == []


# --- GetUser / UpdateUser / DeleteUser ----------------------------------------------------


async def test_get_user_by_external_id_and_by_email(
    users: Users, key: str
) -> None:
    stored = (await users.UpsertUser(upsert(user(email="ada@example.com", name="Ada")),
                                     metadata=auth(key))).user
    by_id = await users.GetUser(users_pb2.GetUserRequest(external_id="u-1"), metadata=auth(key))
    by_email = await users.GetUser(users_pb2.GetUserRequest(email="ada@example.com"),
                                   metadata=auth(key))
    assert by_id.user == stored
    assert by_email.user == stored

    assert await rpc_error(users.GetUser(users_pb2.GetUserRequest(external_id="u-9"),
                                         metadata=auth(key))) == not_found("u-9")
    assert await rpc_error(users.GetUser(users_pb2.GetUserRequest(email="x@example.com"),
                                         metadata=auth(key))) == \
        not_found(email="x@example.com")
    one_of = invalid("external_id", "set exactly one of external_id and email")
    for request in (users_pb2.GetUserRequest(),
                    users_pb2.GetUserRequest(external_id="u-1", email="ada@example.com")):
        assert await rpc_error(users.GetUser(request, metadata=auth(key))) == one_of


async def test_update_user_changes_only_present_fields(
    users: Users, store: Store, key: str
) -> None:
    await users.UpsertUser(upsert(user(name="Ada", plan="trial", traits={"a": 1})),
                           metadata=auth(key))
    response = await users.UpdateUser(
        users_pb2.UpdateUserRequest(user=user(plan="pro", traits={"b": 2})), metadata=auth(key))
    assert response.user.name == "Ada"
    assert response.user.plan == "pro"
    (doc,) = await user_docs(store)
    assert doc["traits"] == {"a": 1, "b": 2}


async def test_update_of_an_unknown_user_is_not_found_and_creates_nothing(
    users: Users, store: Store, key: str
) -> None:
    error = await rpc_error(users.UpdateUser(users_pb2.UpdateUserRequest(user=user("u-9")),
                                             metadata=auth(key)))
    assert error == not_found("u-9")
    assert await user_docs(store) == []


async def test_delete_user_removes_the_user_and_all_their_events(
    users: Users, tracking: Tracking, store: Store, key: str
) -> None:
    for i in range(3):
        await tracking.TrackEvent(track(event(user="u-1", event_id=f"e-{i}")), metadata=auth(key))
    await tracking.TrackEvent(track(event(user="u-2", event_id="e-other")), metadata=auth(key))
    await users.UpsertUser(upsert(user("u-1", email="ada@example.com")), metadata=auth(key))
    await users.UpsertUser(upsert(user("u-2")), metadata=auth(key))

    response = await users.DeleteUser(users_pb2.DeleteUserRequest(email="ada@example.com"),
                                      metadata=auth(key))
    assert response == users_pb2.DeleteUserResponse(external_id="u-1", deleted_events=3)
    assert [d["external_id"] for d in await user_docs(store)] == ["u-2"]
    assert [d["event_id"] for d in await stored_events(store)] == ["e-other"]

    response = await users.DeleteUser(users_pb2.DeleteUserRequest(external_id="u-2"),
                                      metadata=auth(key))
    assert response == users_pb2.DeleteUserResponse(external_id="u-2", deleted_events=1)
    assert await store.db["events"].count_documents({}) == 0
    assert await user_docs(store) == []

    for request, expected in (
        (users_pb2.DeleteUserRequest(external_id="u-2"), not_found("u-2")),
        (users_pb2.DeleteUserRequest(email="ada@example.com"),
         not_found(email="ada@example.com")),
    ):
        assert await rpc_error(users.DeleteUser(request, metadata=auth(key))) == expected


# --- ListUserEvents -----------------------------------------------------------------------


async def test_list_user_events_pages_oldest_first(
    users: Users, tracking: Tracking, key: str
) -> None:
    for i in (3, 0, 4, 1, 2):  # sent out of order; listed by timestamp
        await tracking.TrackEvent(track(event(user="u-1", event_id=f"e-{i}",
                                              timestamp=ts(1_700_000_000 + i))),
                                  metadata=auth(key))
    await tracking.TrackEvent(track(event(user="u-2", event_id="other")), metadata=auth(key))
    await users.UpsertUser(upsert(user("u-1")), metadata=auth(key))

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await users.ListUserEvents(users_pb2.ListUserEventsRequest(
            external_id="u-1", page_size=2, page_token=token), metadata=auth(key))
        pages.append([ev.event_id for ev in page.events])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["e-0", "e-1"], ["e-2", "e-3"], ["e-4"]]

    everything = await users.ListUserEvents(users_pb2.ListUserEventsRequest(external_id="u-1"),
                                            metadata=auth(key))
    assert [ev.event_id for ev in everything.events] == [f"e-{i}" for i in range(5)]
    assert everything.next_page_token == ""
    first = everything.events[0]
    assert first.name == "user_signed_up"
    assert first.external_user_id == "u-1"
    assert first.timestamp == ts(1_700_000_000)


async def test_events_sent_before_the_user_existed_join_their_history(
    users: Users, tracking: Tracking, store: Store, key: str
) -> None:
    response = await tracking.TrackEvent(track(event(user="late", event_id="early-1")),
                                         metadata=auth(key))
    assert response.event_id == "early-1"
    assert [d["user_id"] for d in await stored_events(store)] == ["late"]  # buffered
    before = await users.ListUserEvents(users_pb2.ListUserEventsRequest(external_id="late"),
                                        metadata=auth(key))
    assert [ev.event_id for ev in before.events] == ["early-1"]  # stored, nothing dropped

    await users.UpsertUser(upsert(user("late")), metadata=auth(key))
    await tracking.TrackEvent(track(event(user="late", event_id="after-1")), metadata=auth(key))
    after = await users.ListUserEvents(users_pb2.ListUserEventsRequest(external_id="late"),
                                       metadata=auth(key))
    assert [ev.event_id for ev in after.events] == ["early-1", "after-1"]


async def test_list_user_events_rejects_bad_requests(users: Users, key: str) -> None:
    cases = [
        (users_pb2.ListUserEventsRequest(), invalid("external_id", "is required")),
        (users_pb2.ListUserEventsRequest(external_id="u", page_size=1001),
         invalid("page_size", "must be 0 to 1000")),
        (users_pb2.ListUserEventsRequest(external_id="u", page_token="garbage"),
         invalid("page_token", "is not a token from a previous page")),
    ]
    for request, expected in cases:
        assert await rpc_error(users.ListUserEvents(request, metadata=auth(key))) == expected


# --- TrackEvent's unknown-user policy -----------------------------------------------------


async def test_reject_policy_is_not_found_and_stores_nothing(
    users: Users, tracking: Tracking, store: Store, key: str
) -> None:
    request = track(event(user="ghost", event_id="e-1"))
    request.unknown_user = tracking_pb2.UNKNOWN_USER_POLICY_REJECT
    error = await rpc_error(tracking.TrackEvent(request, metadata=auth(key)))
    assert error == not_found("ghost", metadata=(("external_id", "ghost"),))
    assert await stored_events(store) == []

    batch_request = batch([event(user="u-1", event_id="b-1"), event(user="ghost",
                                                                    event_id="b-2")])
    batch_request.unknown_user = tracking_pb2.UNKNOWN_USER_POLICY_REJECT
    await users.UpsertUser(upsert(user("u-1")), metadata=auth(key))
    error = await rpc_error(tracking.BatchTrack(batch_request, metadata=auth(key)))
    assert error == not_found("ghost", metadata=(("external_id", "ghost"),))
    assert await stored_events(store) == []

    # Once the user exists, the same request is stored.
    await users.UpsertUser(upsert(user("ghost")), metadata=auth(key))
    response = await tracking.TrackEvent(request, metadata=auth(key))
    assert response.event_id == "e-1"
    assert [d["event_id"] for d in await stored_events(store)] == ["e-1"]


# --- auth, scopes and tenants -------------------------------------------------------------


async def test_scopes_are_enforced(
    users: Users, store: Store, make_key: KeyFactory
) -> None:
    events_only = await make_key("acme", ("track:events",))
    read_only = await make_key("acme", ("users:read",))
    write_only = await make_key("acme", ("users:write",))
    write = scope_missing("users:write")
    read = scope_missing("users:read")
    cases = [
        (users.UpsertUser(upsert(user()), metadata=auth(events_only)), write),
        (users.BatchUpsertUsers(users_pb2.BatchUpsertUsersRequest(users=[user()]),
                                metadata=auth(read_only)), write),
        (users.UpdateUser(users_pb2.UpdateUserRequest(user=user()), metadata=auth(read_only)),
         write),
        (users.DeleteUser(users_pb2.DeleteUserRequest(external_id="u-1"),
                          metadata=auth(read_only)), write),
        (users.GetUser(users_pb2.GetUserRequest(external_id="u-1"), metadata=auth(write_only)),
         read),
        (users.ListUserEvents(users_pb2.ListUserEventsRequest(external_id="u-1"),
                              metadata=auth(events_only)), read),
        (users.UpsertUser(upsert(user())), MISSING_KEY),
    ]
    for call, expected in cases:
        assert await rpc_error(call) == expected
    assert await user_docs(store) == []


async def test_a_project_never_sees_another_projects_users(
    users: Users, tracking: Tracking, store: Store, make_key: KeyFactory
) -> None:
    key_a = await make_key("project-a", ALL_SCOPES)
    key_b = await make_key("project-b", ALL_SCOPES)
    await users.UpsertUser(upsert(user("u-1", email="ada@example.com", plan="pro")),
                           metadata=auth(key_a))
    await tracking.TrackEvent(track(event(user="u-1", event_id="e-1")), metadata=auth(key_a))
    users_a = await user_docs(store, "project-a")
    events_a = await stored_events(store, "project-a")

    for call, expected in (
        (users.GetUser(users_pb2.GetUserRequest(external_id="u-1"), metadata=auth(key_b)),
         not_found("u-1")),
        (users.GetUser(users_pb2.GetUserRequest(email="ada@example.com"),
                       metadata=auth(key_b)), not_found(email="ada@example.com")),
        (users.UpdateUser(users_pb2.UpdateUserRequest(user=user("u-1", plan="free")),
                          metadata=auth(key_b)), not_found("u-1")),
        (users.DeleteUser(users_pb2.DeleteUserRequest(external_id="u-1"),
                          metadata=auth(key_b)), not_found("u-1")),
        (users.DeleteUser(users_pb2.DeleteUserRequest(email="ada@example.com"),
                          metadata=auth(key_b)), not_found(email="ada@example.com")),
    ):
        assert await rpc_error(call) == expected
    listed = await users.ListUserEvents(users_pb2.ListUserEventsRequest(external_id="u-1"),
                                        metadata=auth(key_b))
    assert list(listed.events) == []

    # B's upsert of the same id creates B's own user.
    response = await users.UpsertUser(upsert(user("u-1", plan="free")), metadata=auth(key_b))
    assert response.created is True
    assert await user_docs(store, "project-a") == users_a
    assert await stored_events(store, "project-a") == events_a
