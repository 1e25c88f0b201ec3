"""Which spellings of a key are one key: camelCase and snake_case name the same property.

The gateway checks a VibeFollow canonical event's required property (``daysLeft``) under
either spelling, and the server's audience rules match a property or trait under either
(trackd/server/audiences/rules.py); one rule, so the two agree on what "the same key" is.
"""

from __future__ import annotations

import re

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_case(key: str) -> str:
    """``workspaceId`` -> ``workspace_id``; a snake_case key is returned unchanged."""
    return _CAMEL_HUMP.sub(r"_\1", key).lower()
