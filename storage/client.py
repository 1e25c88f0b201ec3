"""The MongoDB connection and the repositories built on it."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from storage.audiences import AudienceQueries
from storage.errors import translate
from storage.events import EventRepository
from storage.history import EventHistory
from storage.idempotency import IdempotencyRepository
from storage.indexes import ensure_indexes
from storage.keys import ApiKeyRepository
from storage.roster import Roster
from storage.users import UserRepository
from storage.websites import WebsiteRepository

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

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        """Raises StorageUnavailable when the database does not answer in time."""
        try:
            await self.db.command("ping")
        except PyMongoError as exc:
            raise translate(exc) from exc


async def connect(
    uri: str,
    database: str = "trackd",
    *,
    server_selection_timeout_ms: int = 2000,
    create_indexes: bool = True,
) -> Store:
    """Connect to ``uri`` and return the repositories of ``database``.

    The short server-selection timeout bounds how long a write waits while the database
    is down, so callers get a retryable error quickly instead of hanging.
    """
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connectTimeoutMS=server_selection_timeout_ms,
        appname="trackd",
    )
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
    )
    if create_indexes:  # the start-up schema work: indexes, and the roster of users
        try:
            await ensure_indexes(db)
            await store.roster.ensure()
        except PyMongoError as exc:
            await client.close()
            raise translate(exc) from exc
    return store
