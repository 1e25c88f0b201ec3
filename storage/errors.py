"""Exceptions raised by storage; the only failure types callers above storage see.

``StorageError``            anything the database refused or failed to do.
└── ``StorageUnavailable``  the database could not be reached, or could not confirm a
                            write as durable; retrying later may succeed.

:func:`translate` is the one mapping from driver errors to these; every repository turns
a ``PyMongoError`` into storage's own exception through it, so no driver type escapes.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError, WriteConcernError


class StorageError(Exception):
    """The database failed an operation."""


class StorageUnavailable(StorageError):
    """The database is unreachable or did not confirm durability; safe to retry."""


def translate(exc: PyMongoError) -> StorageError:
    """Storage's exception for a driver error (raise it ``from exc``).

    Unreachable servers (``ConnectionFailure``: connection lost, server selection timed
    out), writes the server labels retryable (a primary stepping down) and writes not
    confirmed at the requested write concern are all worth retrying later; anything
    else is the database refusing the operation.
    """
    if (isinstance(exc, ConnectionFailure | WriteConcernError)
            or exc.has_error_label("RetryableWriteError")):
        return StorageUnavailable(str(exc))
    return StorageError(str(exc))
