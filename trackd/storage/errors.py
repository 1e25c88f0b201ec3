"""Exceptions raised by storage; the only failure types callers above storage see.

``StorageError``            anything the database refused or failed to do.
└── ``StorageUnavailable``  the database could not be reached, or could not confirm a
                            write as durable; retrying later may succeed.

:func:`translate` is the one mapping from driver errors to these; every repository turns
what it catches as :data:`DRIVER_ERRORS` into storage's own exception through it (or
through :func:`translated`, the same as a ``with`` block), so no driver type escapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pymongo.errors import ConnectionFailure, PyMongoError, WriteConcernError


class StorageError(Exception):
    """The database failed an operation."""


class StorageUnavailable(StorageError):
    """The database is unreachable or did not confirm durability; safe to retry."""


# What a call into the driver may raise. Besides its own errors: on Python 3.11, PyMongo's
# asyncio condition wait (pymongo.lock._async_cond_wait) goes through asyncio.wait_for,
# which can end a timed-out wait without the lock taken back; when server selection then
# times out during an outage, releasing the topology lock raises RuntimeError("Lock is not
# acquired") while the driver handles its ServerSelectionTimeoutError. Seen under load in
# tests/durability (a carried TrackEvent answered INTERNAL, a 500, instead of 503).
DRIVER_ERRORS = (PyMongoError, RuntimeError)


def translate(exc: Exception) -> StorageError:
    """Storage's exception for a driver error (raise it ``from exc``).

    A RuntimeError the driver raised while handling one of its own errors is that error;
    any other is a failure whose outcome is unknown, so unavailable (safe to retry: event
    ids and idempotency keys make a retry harmless).

    Unreachable servers (``ConnectionFailure``: connection lost, server selection timed
    out), writes the server labels retryable (a primary stepping down) and writes not
    confirmed at the requested write concern are all worth retrying later; anything
    else is the database refusing the operation.
    """
    if not isinstance(exc, PyMongoError):
        cause = exc.__context__
        if isinstance(cause, PyMongoError):
            return translate(cause)
        return StorageUnavailable(f"the database driver failed: {exc}")
    if (isinstance(exc, ConnectionFailure | WriteConcernError)
            or exc.has_error_label("RetryableWriteError")):
        return StorageUnavailable(str(exc))
    return StorageError(str(exc))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Driver errors raised in the block, as storage's own (:func:`translate`)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
