"""The call metadata the gateway sends the server about each REST request, and request ids.

The gateway takes a request's id from its ``X-Request-Id`` header when it is sane, else
makes one, and sends it as ``x-request-id``, with the dialect as ``trackd-dialect`` and
the client's address as ``trackd-client-address``. The server reads them (a direct gRPC
client may send the first two too): the HTTP access line of a request and its gRPC call
(a line of its own, or an entry of a ``TrackEvents`` line's ``calls``) carry the same id,
and a request's events and rate limits count by its dialect and client.
"""

from __future__ import annotations

import random
import re

REQUEST_ID_METADATA = "x-request-id"
DIALECT_METADATA = "trackd-dialect"
CLIENT_ADDRESS_METADATA = "trackd-client-address"
# An id from outside is used only if it is this: bounded, and nothing a log line or a
# header could be confused by.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:=+/@-]{1,128}")


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it may be used as a request id, else None."""
    return value if value is not None and REQUEST_ID_PATTERN.fullmatch(value) else None


def new_request_id() -> str:
    """An id for a request or call that came without a sane one: 32 hex digits."""
    # Not uuid4: its os.urandom is a system call per request, and a request id only has
    # to tell a request's log lines apart, not be unguessable.
    return f"{random.getrandbits(128):032x}"
