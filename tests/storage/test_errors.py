"""Storage's one translation of driver errors: no pymongo exception escapes storage.

The translation is checked on the driver's own exception types, then end to end: every
repository, pointed at a port where no database listens, raises StorageUnavailable.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    CursorNotFound,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from trackd.storage import StorageError, StorageUnavailable, Store, connect
from trackd.storage.errors import translate
from trackd.storage.idempotency import Reservation
from trackd.storage.users import UserChange


def _labelled(label: str) -> OperationFailure:
    return OperationFailure("primary stepped down", 189, {"errorLabels": [label]})


@pytest.mark.parametrize("error", [
    ServerSelectionTimeoutError("no servers"),
    AutoReconnect("connection reset"),
    NetworkTimeout("timed out"),
    WriteConcernError("waiting for replication timed out", 64),
    _labelled("RetryableWriteError"),
    ConnectionFailure("connection closed"),
    NotPrimaryError("not primary"),
    WaitQueueTimeoutError("no connection in the pool in time"),
    WTimeoutError("waiting for replication timed out", 64),
    BulkWriteError({"writeErrors": [], "errorLabels": ["RetryableWriteError"]}),
], ids=lambda e: type(e).__name__)
def test_retryable_driver_errors_are_unavailable(error: PyMongoError) -> None:
    translated = translate(error)
    assert type(translated) is StorageUnavailable
    assert str(translated) == str(error)


@pytest.mark.parametrize("error", [
    DuplicateKeyError("E11000 duplicate key", 11000),
    OperationFailure("unknown operator: $frob", 2),
    _labelled("TransientTransactionError"),
    ExecutionTimeout("operation exceeded time limit", 50),
    CursorNotFound("cursor id 7 not found", 43),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000"}]}),
    InvalidOperation("cannot use a closed client"),
    ConfigurationError("unknown option"),
], ids=lambda e: type(e).__name__)
def test_refusals_are_storage_errors(error: PyMongoError) -> None:
    translated = translate(error)
    assert type(translated) is StorageError
    assert str(translated) == str(error)


@pytest.fixture
async def unreachable_store() -> AsyncIterator[Store]:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = await connect(f"mongodb://127.0.0.1:{port}/?directConnection=true", "unreachable",
                          server_selection_timeout_ms=100, create_indexes=False)
    yield store
    await store.close()


NOW = datetime(2026, 1, 1, tzinfo=UTC)

CALLS: dict[str, Callable[[Store], Awaitable[object]]] = {
    "events.insert_many": lambda s: s.events.insert_many([{"project_id": "p", "event_id": "e"}]),
    "keys.insert": lambda s: s.keys.insert("key_1", "hash", "p", ["track:events"]),
    "keys.find_by_hash": lambda s: s.keys.find_by_hash("hash"),
    "keys.revoke": lambda s: s.keys.revoke("key_1"),
    "keys.list": lambda s: s.keys.list(),
    "keys.project_has_active_key": lambda s: s.keys.project_has_active_key("p"),
    "idempotency.reserve": lambda s: s.idempotency.reserve(
        "p", "scope", "k", "fp", NOW, timedelta(seconds=5)),
    "idempotency.complete": lambda s: s.idempotency.complete(Reservation(ObjectId()), b""),
    "ping": lambda s: s.ping(),
    "users.bulk_upsert": lambda s: s.users.bulk_upsert("p", [("u", UserChange())], NOW),
    "roster.ids": lambda s: s.roster.ids("p"),
    "roster.rebuild": lambda s: s.roster.rebuild(),
    "roster.ensure": lambda s: s.roster.ensure(),
    "users.owners_of_anonymous_ids": lambda s: s.users.owners_of_anonymous_ids("p", ["a"]),
    "audiences.event_stats": lambda s: s.audiences.event_stats("p", "signed_up"),
    "audiences.every_event_stats": lambda s: s.audiences.every_event_stats("p"),
    "audiences.stats_of_users": lambda s: s.audiences.stats_of_users("p", ["u"]),
    "audiences.user_document_ids": lambda s: s.audiences.user_document_ids("p"),
    "websites.insert": lambda s: s.websites.insert("w", "p", ["https://a.example"]),
    "users.upsert": lambda s: s.users.upsert("p", "u", UserChange(), NOW),
    "users.get": lambda s: s.users.get("p", external_id="u"),
    "users.existing": lambda s: s.users.existing("p", ["u"]),
    "users.delete": lambda s: s.users.delete("p", "u"),
    "history.page": lambda s: s.history.page("p", "u", 10, None),
    "audiences.profiles": lambda s: s.audiences.profiles("p", ["plan"]),
    "websites.get_many": lambda s: s.websites.get_many(["w"]),
    "websites.list": lambda s: s.websites.list(),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_every_repository_raises_storage_unavailable_when_unreachable(
    unreachable_store: Store, name: str,
) -> None:
    with pytest.raises(StorageUnavailable):
        await CALLS[name](unreachable_store)


async def test_connect_reports_an_unreachable_database_as_storage_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageUnavailable):
        await connect(f"mongodb://127.0.0.1:{port}/?directConnection=true", "unreachable",
                      server_selection_timeout_ms=100)


async def test_a_lost_release_is_silent(unreachable_store: Store) -> None:
    # Best effort by design: the lease runs out on its own.
    await unreachable_store.idempotency.release(Reservation(ObjectId()))


def test_a_runtime_error_raised_while_the_driver_handles_its_own_is_that_error() -> None:
    """PyMongo's asyncio lock on Python 3.11 can raise RuntimeError("Lock is not acquired")
    while it handles a ServerSelectionTimeoutError (trackd/storage/errors.py): the outage it
    stands for, not an internal error. A RuntimeError with no driver error behind it has
    an unknown outcome: unavailable, safe to retry."""
    def raised_while_handling(error: PyMongoError) -> RuntimeError:
        lock_error = RuntimeError("Lock is not acquired")
        lock_error.__context__ = error  # as Python sets it for a raise in an except block
        return lock_error

    translated = translate(raised_while_handling(
        ServerSelectionTimeoutError("127.0.0.1:1: connection refused")))
    assert type(translated) is StorageUnavailable
    assert str(translated) == "127.0.0.1:1: connection refused"
    refused = OperationFailure("not authorized", code=13)
    assert type(translate(raised_while_handling(refused))) is StorageError
    alone = translate(RuntimeError("Lock is not acquired"))
    assert type(alone) is StorageUnavailable
    assert str(alone) == "the database driver failed: Lock is not acquired"
