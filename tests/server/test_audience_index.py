"""The audience index against the events themselves: loading over an existing history,
writes made by another trackd instance, writes racing the load, and changes made behind
trackd's back. Each test answers the same audiences from an indexed server and from one
reading the events, over one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.server.helpers import auth, batch, event
from tests.server.test_audiences_grpc import (
    COUNT_GT,
    HAS_DONE,
    HAS_NOT_DONE,
    LAST_WITHIN,
    Audiences,
    Tracking,
    Users,
    ev,
    history,
    members,
    one,
    ts,
    upsert,
)
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.server.pipeline import PipelineConfig
from trackd.storage import Store
from trackd.storage.changes import MARKS, Marked, decode
from trackd.v1 import (
    audiences_pb2_grpc,
    tracking_pb2,
    tracking_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class Instance:
    """A trackd server over the test's database, and stubs of its services."""

    def __init__(self, server: TrackdServer, channel: grpc.aio.Channel) -> None:
        self.server = server
        self.audiences: Audiences = audiences_pb2_grpc.AudienceServiceStub(channel)
        self.users: Users = users_pb2_grpc.UserServiceStub(channel)
        self.tracking: Tracking = tracking_pb2_grpc.TrackingServiceStub(channel)


@pytest.fixture
async def instances(store: Store) -> AsyncIterator[dict[str, Instance]]:
    """"indexed" evaluates from the index; "events" reads the events; both share the
    database, as two deployed instances would."""
    made: dict[str, Instance] = {}
    opened = []
    for name in ("indexed", "events"):
        server = await create_server(store, ServerConfig(
            port=0, auth_cache_seconds=0, pipeline=PipelineConfig(),
            audience_index=name == "indexed"))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        opened.append((server, channel))
        made[name] = Instance(server, channel)
    yield made
    for server, channel in opened:
        await channel.close()
        await server.stop(grace=5)


AUDIENCES = {
    "viewed, never used": one(ev(HAS_DONE, "viewed"), ev(HAS_NOT_DONE, "used")),
    "viewed more than twice": one(ev(COUNT_GT, "viewed", count=2)),
    "viewed more than five times": one(ev(COUNT_GT, "viewed", count=5)),
    "viewed in the last hour": one(ev(LAST_WITHIN, "viewed", within=HOUR)),
    "never viewed": one(ev(HAS_NOT_DONE, "viewed")),
}


async def answers(instance: Instance, key: str) -> dict[str, list[str]]:
    return {label: await members(instance.audiences, key, aud)
            for label, aud in AUDIENCES.items()}


async def indexed_view_ready(instance: Instance) -> bool:
    index = instance.server.audience_index
    assert index is not None
    return await index.view("acme") is not None


async def seed(instance: Instance, key: str, people: Sequence[str], views: int) -> None:
    for person in people:
        await upsert(instance.users, key, person)
        await history(instance.tracking, key, person,
                      *(("viewed", NOW - HOUR * 3 + timedelta(minutes=i)) for i in range(views)))


async def test_loads_over_an_existing_history(instances: dict[str, Instance], key: str) -> None:
    events = instances["events"]
    await seed(events, key, ["ann", "bob"], views=3)
    await seed(events, key, ["cy"], views=1)
    await history(events.tracking, key, "bob", ("used", NOW - HOUR))
    await upsert(events.users, key, "dee")  # no events at all

    index = instances["indexed"].server.audience_index
    assert index is not None
    assert await index.prepare("acme")
    assert await indexed_view_ready(instances["indexed"])
    expected = {
        "viewed, never used": ["ann", "cy"],
        "viewed more than twice": ["ann", "bob"],
        "viewed more than five times": [],
        "viewed in the last hour": [],
        "never viewed": ["dee"],
    }
    assert await answers(instances["indexed"], key) == expected
    assert await answers(events, key) == expected


async def test_another_instance_writes_are_seen_at_once(
    instances: dict[str, Instance], key: str
) -> None:
    indexed, other = instances["indexed"], instances["events"]
    index = indexed.server.audience_index
    assert index is not None
    assert await index.prepare("acme")

    # Each write goes through the other instance; the indexed one answers right after.
    await upsert(other.users, key, "ann")
    assert await members(indexed.audiences, key, AUDIENCES["never viewed"]) == ["ann"]
    await history(other.tracking, key, "ann", ("viewed", NOW - timedelta(minutes=5)))
    assert await members(indexed.audiences, key, AUDIENCES["viewed in the last hour"]) == \
        ["ann"]
    # A big batch: its changes take the feed a while, and the evaluation waits for them.
    await history(other.tracking, key, "ann",
                  *(("viewed", NOW - DAY + timedelta(seconds=i)) for i in range(500)))
    assert await members(indexed.audiences, key,
                         one(ev(COUNT_GT, "viewed", count=500))) == ["ann"]
    # Events sent anonymously, then linked to a new user by an upsert naming the id.
    await other.tracking.BatchTrack(_anonymous_views("anon-1", 6), metadata=auth(key))
    await upsert(other.users, key, "bob", anonymous_ids=["anon-1"])
    assert await members(indexed.audiences, key, AUDIENCES["viewed more than five times"]) == \
        ["ann", "bob"]
    # A deleted user is gone from every audience, and comes back with no history.
    await other.users.DeleteUser(users_pb2.DeleteUserRequest(external_id="bob"),
                                 metadata=auth(key))
    assert await members(indexed.audiences, key, AUDIENCES["viewed, never used"]) == ["ann"]
    await upsert(other.users, key, "bob")
    assert await members(indexed.audiences, key, AUDIENCES["never viewed"]) == ["bob"]
    assert await answers(indexed, key) == await answers(other, key)


async def test_writes_racing_the_load_are_counted_once(
    instances: dict[str, Instance], key: str
) -> None:
    indexed, other = instances["indexed"], instances["events"]
    people = [f"user-{i:02d}" for i in range(40)]
    await seed(other, key, people, views=2)
    index = indexed.server.audience_index
    assert index is not None

    async def keep_writing() -> None:
        for round_ in range(4):
            for person in people[round_::4]:
                await history(other.tracking, key, person, ("viewed", NOW - HOUR * 2))

    # The load reads the history while new occurrences (and their changes) arrive.
    loaded, _ = await asyncio.gather(index.prepare("acme"), keep_writing())
    assert loaded
    expected = await answers(other, key)
    assert expected["viewed more than twice"] == people  # every writer's event landed
    assert await answers(indexed, key) == expected


async def test_changes_behind_trackds_back(
    instances: dict[str, Instance], key: str, store: Store
) -> None:
    indexed, other = instances["indexed"], instances["events"]
    index = indexed.server.audience_index
    assert index is not None
    assert await index.prepare("acme")
    await seed(other, key, ["ann", "bob"], views=3)
    assert await members(indexed.audiences, key, AUDIENCES["viewed more than twice"]) == \
        ["ann", "bob"]

    # An operator deletes one of ann's events straight from the collection.
    await store.db["events"].delete_one({"project_id": "acme", "user_id": "ann"})
    assert await members(indexed.audiences, key, AUDIENCES["viewed more than twice"]) == \
        ["bob"]
    # And drops the collection: nothing the index knew of stands.
    await store.db["events"].drop()
    assert await members(indexed.audiences, key, AUDIENCES["never viewed"]) == ["ann", "bob"]
    assert await answers(indexed, key) == await answers(other, key)


def _anonymous_views(anonymous_id: str, count: int) -> tracking_pb2.BatchTrackRequest:
    return batch([event("viewed", user="", anonymous_id=anonymous_id,
                        timestamp=ts(NOW - HOUR * 2 + timedelta(minutes=i)))
                  for i in range(count)])


async def test_a_view_keeps_what_it_saw_while_a_user_changes(
    instances: dict[str, Instance], key: str, store: Store
) -> None:
    """An evaluation sees the index as of its start: a user changed meanwhile (here one of
    their events deleted) keeps the statistics it began with, not none at all."""
    indexed, other = instances["indexed"], instances["events"]
    index = indexed.server.audience_index
    assert index is not None
    await seed(other, key, ["ann"], views=3)
    assert await index.prepare("acme")
    view = await index.view("acme")
    assert view is not None

    await store.db["events"].delete_one({"project_id": "acme", "user_id": "ann"})
    project = index._projects["acme"]  # white box: wait for the feed to apply the deletion
    for _ in range(200):
        if "ann" in project.dirty:
            break
        await asyncio.sleep(0.01)
    assert "ann" in project.dirty
    assert view.stats("viewed")["ann"].count == 3
    later = await index.view("acme")
    assert later is not None
    assert later.stats("viewed")["ann"].count == 2


async def test_documents_trackd_did_not_write_count_for_no_rule(
    instances: dict[str, Instance], key: str, store: Store
) -> None:
    indexed, other = instances["indexed"], instances["events"]
    index = indexed.server.audience_index
    assert index is not None
    await seed(other, key, ["ann", "bob"], views=3)
    strays: list[dict[str, Any]] = [
        {"project_id": "acme", "event_id": "stray-1", "user_id": "ann", "name": "viewed",
         "timestamp": "today"},
        {"project_id": "acme", "event_id": "stray-2", "user_id": "bob", "timestamp": NOW},
    ]
    await store.db["events"].insert_one(strays[0])
    assert await index.prepare("acme")  # the load skips it
    await store.db["events"].insert_one(strays[1])  # so does the feed
    assert await indexed_view_ready(indexed)
    assert await members(indexed.audiences, key, AUDIENCES["viewed more than twice"]) == \
        ["ann", "bob"]
    assert await indexed_view_ready(indexed)  # still served: nothing was lost


def test_a_mark_is_the_seq_its_own_change_wrote() -> None:
    """An update's looked-up document may already hold a later mark; only the change's
    own fields say which mark it was."""
    change = {"operationType": "update", "ns": {"db": "t", "coll": MARKS},
              "documentKey": {"_id": "owner-1"},
              "fullDocument": {"_id": "owner-1", "seq": 3},
              "updateDescription": {"updatedFields": {"seq": 2}}}
    assert decode(change) == [Marked("owner-1", 2)]
    inserted = {"operationType": "insert", "ns": {"db": "t", "coll": MARKS},
                "documentKey": {"_id": "owner-1"}, "fullDocument": {"_id": "owner-1", "seq": 1}}
    assert decode(inserted) == [Marked("owner-1", 1)]
