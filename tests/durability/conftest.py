"""In the durability tests the test's key is made in its database process by ``trackd keys
create`` (``database_key``, tests/fixtures.py), not in the in-process store."""

from __future__ import annotations

import pytest


@pytest.fixture
def key(database_key: str) -> str:
    return database_key
