"""Storage: everything that talks to MongoDB lives here, and nothing else imports pymongo.

What lives here: the connection (:mod:`storage.client`), the collections' indexes
(:mod:`storage.indexes`), one repository per collection (:mod:`storage.events`,
:mod:`storage.keys`, :mod:`storage.idempotency`), the embedded local database launcher
(:mod:`storage.embedded`), the change feed derived views follow (:mod:`storage.changes`)
and the exceptions callers see (:mod:`storage.errors`).

May import: the standard library, pymongo and bson. Callers above it see plain Python
values (dicts, datetimes, strings) and :mod:`storage.errors`, never driver types.
"""

from storage.client import InvalidUri, Store, connect
from storage.errors import StorageError, StorageUnavailable

__all__ = ["InvalidUri", "StorageError", "StorageUnavailable", "Store", "connect"]
