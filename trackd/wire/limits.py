"""The wire's limits, which the server and the gateway both apply.

Message size: both ends of the gateway -> server channel (and the server's listener) allow
the same largest message, :data:`MAX_MESSAGE_BYTES`.

Requests: what one request may carry (:data:`MAX_BATCH_EVENTS`, :data:`MAX_NAME_CHARS`,
...) is the server's rule for every client, stated once here so the gateway's OpenAPI
document states the very numbers the server enforces.

Nesting: protobuf's decoder (upb, which python-protobuf and grpc decode with) refuses a
message nested more than :data:`MAX_DECODE_DEPTH` levels below the request. The gateway
refuses a value it could not encode within that (trackd/gateway/convert.py counts the levels);
the server allows properties and traits :data:`MAX_PROPERTY_DEPTH` levels of nesting, a
little less than decodes where they sit (:func:`decodable_objects`), so a request within
the server's rule always decodes, and its message for one that does not can name the rule.
"""

from __future__ import annotations

# How many events one BatchTrack call carries at most (the server's rule; a dialect
# whose vendor allows more in one request sends them in calls of this many).
MAX_BATCH_EVENTS = 500

# A 5 MiB REST body becomes a somewhat larger proto message; leave headroom.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# upb's kUpb_WireFormat_DefaultDepthLimit.
MAX_DECODE_DEPTH = 100
# Where an event's properties Struct sits below its request message:
# TrackEventRequest.event.properties and BatchTrackRequest.events[].properties.
DEPTH_EVENT_PROPERTIES = 2

# How deep properties (and traits) may nest: the server's rule, the top level counting one.
MAX_PROPERTY_DEPTH = 32

# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799

# The server's limits on what one request carries, for every client (trackd/server/validation.py
# enforces them); the gateway's OpenAPI document states them (trackd/gateway/openapi/limits.py).
MAX_BATCH_USERS = 1000
MAX_NAME_CHARS = 512
MAX_ID_CHARS = 256
MAX_PROPERTY_KEYS = 100
MAX_PROPERTIES_BYTES = 1024 * 1024
MAX_PROPERTY_KEY_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_EMAIL_CHARS = 254
MAX_PHONE_CHARS = 64
MAX_TRAIT_KEYS = 100
# Optional profile strings and their length limits; an empty string clears the field.
PROFILE_LIMITS = {
    "email": MAX_EMAIL_CHARS, "phone": MAX_PHONE_CHARS, "name": 1024, "first_name": 1024,
    "last_name": 1024, "company": 1024, "role": 1024, "plan": 1024, "avatar_url": 2048,
    "stripe_customer_id": MAX_ID_CHARS,
}

def decodable_objects(at: int) -> int:
    """How many JSON objects may nest in a Struct ``at`` message levels below the request
    and still decode: each costs three levels (map entry, ``Value``, ``Struct``)."""
    return (MAX_DECODE_DEPTH - at + 1) // 3


def timestamp_in_range(seconds: int, nanos: int) -> bool:
    """Whether a Timestamp's fields are within its range (and so convert to a datetime)."""
    return TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS and 0 <= nanos < 10**9
