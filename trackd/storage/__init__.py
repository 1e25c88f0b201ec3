"""Storage: everything that talks to MongoDB lives here, and nothing else imports pymongo.

What lives here: the connection (:mod:`trackd.storage.client`), the collections' indexes
(:mod:`trackd.storage.indexes`), one repository per collection (:mod:`trackd.storage.events`,
:mod:`trackd.storage.keys`, :mod:`trackd.storage.idempotency`, :mod:`trackd.storage.users` for
profiles, :mod:`trackd.storage.websites`; the api_keys and websites ones share one shape,
:mod:`trackd.storage.records`), tracking plans' versions, quarantine and violations
(:mod:`trackd.storage.plans`, :mod:`trackd.storage.quarantine`,
:mod:`trackd.storage.plan_violations`), webhook endpoints and their leases
(:mod:`trackd.storage.webhooks`), their retry queue, dead letters and attempts
(:mod:`trackd.storage.deliveries`), a project's events in commit order from a position or a time
(:mod:`trackd.storage.event_feed`), the console's decisions and per-minute counts
(:mod:`trackd.storage.decisions`), the roster of each project's users
(:mod:`trackd.storage.roster`), a user's event history and its page tokens
(:mod:`trackd.storage.history`), the audience queries over events and profiles
(:mod:`trackd.storage.audiences`), the embedded local database launcher
(:mod:`trackd.storage.embedded`) and its child process (:mod:`trackd.storage.child_process`), the
change feed derived views follow (:mod:`trackd.storage.changes`), how change streams are opened
(:mod:`trackd.storage.streams`) and the exceptions callers see, with the one translation of driver
errors into them (:mod:`trackd.storage.errors`).

May import: the standard library, pymongo, bson and orjson; no other trackd package
(checked by ``lint-imports``). Callers above it see plain Python values (dicts,
datetimes, strings) and :mod:`trackd.storage.errors`, never driver types.
"""

from trackd.storage.client import InvalidUri, Store, connect
from trackd.storage.errors import StorageError, StorageUnavailable

__all__ = ["InvalidUri", "StorageError", "StorageUnavailable", "Store", "connect"]
