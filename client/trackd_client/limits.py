"""The server's limits, as data: what ``track()`` and ``identify()`` check before queueing.

The server (``trackd/server/validation.py``, with the numbers in ``trackd/wire/limits.py``) is the
source of truth and enforces every one of these itself; the SDK must
not import the server, so it keeps a copy, and ``tests/client/test_package.py`` fails when
the two differ.
"""

from __future__ import annotations

MAX_BATCH_EVENTS = 500            # events in one BatchTrack
MAX_BATCH_USERS = 1000            # users in one BatchUpsertUsers
MAX_NAME_CHARS = 512              # an event's name
MAX_ID_CHARS = 256                # event id, external user id, anonymous id
MAX_PROPERTY_KEYS = 100           # top-level keys of an event's properties
MAX_PROPERTIES_BYTES = 1024 * 1024  # properties (or traits) as compact JSON
MAX_PROPERTY_DEPTH = 32           # nesting of properties
MAX_PROPERTY_KEY_CHARS = 256      # one property (or trait) key
MAX_TRAIT_KEYS = 100              # top-level keys of a user's traits
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the server's gRPC message limit
