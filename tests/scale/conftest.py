"""Fixtures: one database process, and trackd instances on it (tests/durability's)."""

from tests.durability.conftest import database, key, start_trackd

__all__ = ["database", "key", "start_trackd"]
