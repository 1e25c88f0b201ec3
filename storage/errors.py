"""Exceptions raised by storage; the only failure types callers above storage see.

``StorageError``            anything the database refused or failed to do.
└── ``StorageUnavailable``  the database could not be reached, or could not confirm a
                            write as durable; retrying later may succeed.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database failed an operation."""


class StorageUnavailable(StorageError):
    """The database is unreachable or did not confirm durability; safe to retry."""
