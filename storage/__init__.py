"""Storage: everything that talks to MongoDB lives here, and nothing else imports pymongo.

What lives here: the connection (:mod:`storage.client`), the collections' indexes
(:mod:`storage.indexes`), one repository per collection (:mod:`storage.events`,
:mod:`storage.keys`, :mod:`storage.idempotency`, :mod:`storage.users` for profiles,
:mod:`storage.websites`, :mod:`storage.webhooks` for webhook endpoints and their leases,
:mod:`storage.deliveries` for their retry queue, dead letters and attempts,
:mod:`storage.decisions` for the console's decisions and per-minute counts),
a project's events in commit order from a position or a time (:mod:`storage.event_feed`),
the roster of each project's users (:mod:`storage.roster`),
a user's event history and its page tokens (:mod:`storage.history`), the audience
queries over events and profiles (:mod:`storage.audiences`), the embedded local database
launcher (:mod:`storage.embedded`),
the change feed derived views follow (:mod:`storage.changes`), how change streams are
opened (:mod:`storage.streams`) and the exceptions callers
see, with the one translation of driver errors into them (:mod:`storage.errors`).

May import: the standard library, pymongo, bson and orjson; no other trackd package
(checked by ``lint-imports``). Callers above it see plain Python values (dicts,
datetimes, strings) and :mod:`storage.errors`, never driver types.
"""

from storage.client import InvalidUri, Store, connect
from storage.errors import StorageError, StorageUnavailable

__all__ = ["InvalidUri", "StorageError", "StorageUnavailable", "Store", "connect"]
