"""Storage: everything that talks to MongoDB lives here, and nothing else imports pymongo.

What lives here: the connection (:mod:`storage.client`), the collections' indexes
(:mod:`storage.indexes`), one repository per collection (:mod:`storage.events`,
:mod:`storage.keys`, :mod:`storage.idempotency`, :mod:`storage.users` for profiles,
:mod:`storage.websites`; the api_keys and websites ones share one shape,
:mod:`storage.records`), tracking plans' versions, quarantine and violations
(:mod:`storage.plans`, :mod:`storage.quarantine`, :mod:`storage.plan_violations`),
webhook endpoints and their leases (:mod:`storage.webhooks`), their retry queue, dead
letters and attempts (:mod:`storage.deliveries`), a project's events in commit order from a
position or a time (:mod:`storage.event_feed`), the console's decisions and per-minute
counts (:mod:`storage.decisions`),
the roster of each project's users (:mod:`storage.roster`),
a user's event history and its page tokens (:mod:`storage.history`), the audience
queries over events and profiles (:mod:`storage.audiences`), the embedded local database
launcher (:mod:`storage.embedded`) and its child process (:mod:`storage.child_process`),
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
