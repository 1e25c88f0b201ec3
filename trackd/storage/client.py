"""The MongoDB connection and the repositories built on it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, PyMongoError

from trackd.storage.audiences import AudienceQueries
from trackd.storage.decisions import DecisionLog
from trackd.storage.deliveries import DeliveryQueue
from trackd.storage.errors import DRIVER_ERRORS, StorageError, StorageUnavailable, translate
from trackd.storage.events import EventRepository
from trackd.storage.history import EventHistory
from trackd.storage.idempotency import IdempotencyRepository
from trackd.storage.indexes import ensure_indexes
from trackd.storage.keys import ApiKeyRepository
from trackd.storage.plan_violations import ViolationLog
from trackd.storage.plans import PlanRepository
from trackd.storage.quarantine import QuarantineRepository
from trackd.storage.roster import Roster
from trackd.storage.users import UserRepository
from trackd.storage.webhooks import EndpointRepository
from trackd.storage.websites import WebsiteRepository


class InvalidUri(StorageError):
    """The connection string is not one PyMongo accepts."""


# Acknowledgements promise durability: journaled, and on a majority of a replica set.
DURABLE = WriteConcern(w="majority", j=True)


@dataclass
class Store:
    """One database's repositories, sharing one client (and so one connection pool)."""

    client: AsyncMongoClient[dict[str, object]]
    db: AsyncDatabase[dict[str, object]]
    events: EventRepository
    keys: ApiKeyRepository
    idempotency: IdempotencyRepository
    users: UserRepository
    roster: Roster
    history: EventHistory
    audiences: AudienceQueries
    websites: WebsiteRepository
    plans: PlanRepository
    quarantine: QuarantineRepository
    plan_violations: ViolationLog
    webhooks: EndpointRepository
    deliveries: DeliveryQueue
    decisions: DecisionLog

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        """Raises StorageUnavailable when the database does not answer in time."""
        try:
            await self.db.command("ping")
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc


async def connect(
    uri: str,
    database: str = "trackd",
    *,
    server_selection_timeout_ms: int = 1000,
    connect_timeout_ms: int = 2000,
    create_indexes: bool = True,
    reachable_within: float | None = None,
) -> Store:
    """Connect to ``uri`` and return the repositories of ``database``.

    The short server-selection timeout bounds how long a write waits when the database
    has just gone (a write already under way when it died; once the health monitor
    knows, calls fail at once), so callers get a retryable error quickly instead of
    hanging. With
    ``reachable_within``, first wait at most that many seconds for the database to answer
    a ping (start-up), else raise :class:`StorageUnavailable` naming its hosts. A string
    PyMongo refuses raises :class:`InvalidUri`.
    """
    try:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=connect_timeout_ms,
            appname="trackd",
        )
    except (ConfigurationError, ValueError, TypeError) as exc:  # InvalidURI is one
        raise InvalidUri(str(exc)) from exc
    if reachable_within is not None:
        try:
            await _wait_reachable(client, reachable_within)
        except BaseException:
            await client.close()
            raise
    db = client.get_database(database, write_concern=DURABLE)
    roster = Roster(db)
    history = EventHistory(db)
    users = UserRepository(db, roster, history)
    store = Store(
        client=client,
        db=db,
        events=EventRepository(db),
        keys=ApiKeyRepository(db),
        idempotency=IdempotencyRepository(db),
        users=users,
        roster=roster,
        history=history,
        audiences=AudienceQueries(db, roster),
        websites=WebsiteRepository(db),
        plans=PlanRepository(db),
        quarantine=QuarantineRepository(db),
        plan_violations=ViolationLog(db),
        webhooks=EndpointRepository(db),
        deliveries=DeliveryQueue(db),
        decisions=DecisionLog(db),
    )
    if create_indexes:  # the start-up schema work: indexes, and the roster of users
        try:
            await ensure_indexes(db)
            await store.roster.ensure()
        except PyMongoError as exc:
            await client.close()
            raise translate(exc) from exc
    return store


async def _wait_reachable(client: AsyncMongoClient[dict[str, object]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(remaining):
                await client.admin.command("ping")
            return
        except TimeoutError:
            break
        except PyMongoError:  # server selection gave up before our deadline: ask again
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    raise StorageUnavailable(
        f"MongoDB at {uri_hosts_of(client)} did not answer within {seconds:g} s")


def uri_hosts_of(client: AsyncMongoClient[dict[str, object]]) -> str:
    seeds = client.topology_description.server_descriptions()
    return ",".join(f"{host}:{port}" for host, port in seeds) or "(no host)"
