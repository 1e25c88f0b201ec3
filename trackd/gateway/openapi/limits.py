"""The server's limits, as the OpenAPI document states them.

The gateway may not import :mod:`trackd.server`: the limits the server enforces for every
client come from :mod:`trackd.wire.limits`, and the audience ones
(``trackd/server/audiences/parsing.py``) are restated here for the document;
``tests/gateway/test_openapi.py`` compares each one with the server's constant, and
sends requests at and past a representative few. The gateway's own limits are not
restated: the document imports them from the dialect modules.
"""

from __future__ import annotations

import re

# The wire's and the server's request limits, which the server enforces: imported, not
# restated.
from trackd.wire.limits import MAX_BATCH_EVENTS as MAX_BATCH_EVENTS
from trackd.wire.limits import MAX_BATCH_USERS as MAX_BATCH_USERS
from trackd.wire.limits import MAX_EMAIL_CHARS as MAX_EMAIL_CHARS
from trackd.wire.limits import MAX_ID_CHARS as MAX_ID_CHARS
from trackd.wire.limits import MAX_IDEMPOTENCY_KEY_CHARS as MAX_IDEMPOTENCY_KEY_CHARS
from trackd.wire.limits import MAX_NAME_CHARS as MAX_NAME_CHARS
from trackd.wire.limits import MAX_PHONE_CHARS as MAX_PHONE_CHARS
from trackd.wire.limits import MAX_PROPERTIES_BYTES as MAX_PROPERTIES_BYTES
from trackd.wire.limits import MAX_PROPERTY_DEPTH as MAX_PROPERTY_DEPTH
from trackd.wire.limits import MAX_PROPERTY_KEY_CHARS as MAX_PROPERTY_KEY_CHARS
from trackd.wire.limits import MAX_PROPERTY_KEYS as MAX_PROPERTY_KEYS
from trackd.wire.limits import MAX_TRAIT_KEYS as MAX_TRAIT_KEYS
from trackd.wire.limits import PROFILE_LIMITS as PROFILE_LIMITS

# An Idempotency-Key the document allows: 1-255 printable ASCII characters.
IDEMPOTENCY_KEY = re.compile(rf"[ -~]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
IDEMPOTENCY_KEY_RULE = f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
# What Python's \s matches in a str and ECMA-262's does not (the server's patterns are
# Python's, the document's ECMA-262's).
SPACE = r"\s\x1c-\x1f\x85"
# trackd.server.validation._EMAIL, as a JSON Schema (ECMA-262) pattern.
EMAIL_PATTERN = rf"^[^@{SPACE}]+@[^@{SPACE}]+$"
# trackd/server/audiences/rules.py: which rule operators need which fields.
AUDIENCE_WITHIN_EVENT_OPS = ("first_done_within", "last_done_within")
AUDIENCE_VALUE_OPS = ("equals", "not_equals", "contains", "greater_than", "less_than")
AUDIENCE_NUMERIC_OPS = ("greater_than", "less_than")
MAX_AUDIENCE_GROUPS = 20
MAX_RULES_PER_GROUP = 20
# trackd/server/services/audiences.py: the page size when an evaluation names no limit.
DEFAULT_PAGE_SIZE = 100

# The server's default rate limit per dialect, (requests, seconds) per key; None = off.
# Each is a setting (TRACKD_RATE_LIMIT_<DIALECT>); the document states the defaults.
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float] | None] = {
    "vibefollow": None,
    "flywheel": None,
    "databuddy": (600, 60),
    "cueflow": (100, 60),
    "segment": None,
    "posthog": None,
    "amplitude": None,
    "mixpanel": None,
}
