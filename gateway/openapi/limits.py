"""The server's limits, as the OpenAPI document states them.

The gateway may not import :mod:`server`, so the limits the server enforces for every
client (``server/validation.py``, ``server/audiences/parsing.py``) are restated here for the
document; ``tests/gateway/test_openapi.py`` compares each one with the server's
constant, and sends requests at and past a representative few. The gateway's own limits
are not restated: the document imports them from the dialect modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The wire's, which the server enforces: imported, not restated.
from trackd_wire.limits import MAX_PROPERTY_DEPTH as MAX_PROPERTY_DEPTH

MAX_BATCH_EVENTS = 500
MAX_BATCH_USERS = 1000
MAX_NAME_CHARS = 512
MAX_ID_CHARS = 256
MAX_PROPERTY_KEYS = 100
MAX_PROPERTIES_BYTES = 1024 * 1024
MAX_PROPERTY_KEY_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 255
# An Idempotency-Key the document allows: 1-255 printable ASCII characters.
IDEMPOTENCY_KEY = re.compile(rf"[ -~]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
IDEMPOTENCY_KEY_RULE = f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
MAX_EMAIL_CHARS = 254
MAX_PHONE_CHARS = 64
MAX_TRAIT_KEYS = 100
PROFILE_LIMITS: Mapping[str, int] = {
    "email": MAX_EMAIL_CHARS, "phone": MAX_PHONE_CHARS, "name": 1024, "first_name": 1024,
    "last_name": 1024, "company": 1024, "role": 1024, "plan": 1024, "avatar_url": 2048,
    "stripe_customer_id": MAX_ID_CHARS,
}
# What Python's \s matches in a str and ECMA-262's does not (the server's patterns are
# Python's, the document's ECMA-262's).
SPACE = r"\s\x1c-\x1f\x85"
# server.validation._EMAIL, as a JSON Schema (ECMA-262) pattern.
EMAIL_PATTERN = rf"^[^@{SPACE}]+@[^@{SPACE}]+$"
# server/audiences/rules.py: which rule operators need which fields.
AUDIENCE_WITHIN_EVENT_OPS = ("first_done_within", "last_done_within")
AUDIENCE_VALUE_OPS = ("equals", "not_equals", "contains", "greater_than", "less_than")
AUDIENCE_NUMERIC_OPS = ("greater_than", "less_than")
MAX_AUDIENCE_GROUPS = 20
MAX_RULES_PER_GROUP = 20
# server/services/audiences.py: the page size when an evaluation names no limit.
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
