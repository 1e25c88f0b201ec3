"""Fixtures: a database process and trackd processes of the test's own, killed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.durability.harness import Database, Trackd, create_key

StartTrackd = Callable[..., Awaitable[Trackd]]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """SecantusDB on a fixed port and data directory of this test (restartable)."""
    db = Database(tmp_path)
    try:
        await db.start()
        yield db
    finally:
        db.close()


@pytest.fixture
async def key(database: Database) -> str:
    """An API key of the test project, made by ``trackd keys create``."""
    return await create_key(database)


@pytest.fixture
async def start_trackd(tmp_path: Path, database: Database) -> AsyncIterator[StartTrackd]:
    """Start ``trackd serve`` on ``database`` with TRACKD_* settings; killed afterwards."""
    started: list[Trackd] = []

    async def start(**settings: str) -> Trackd:
        trackd = Trackd(tmp_path, database.uri, **settings)
        started.append(trackd)
        await trackd.start()
        return trackd

    try:
        yield start
    finally:
        for trackd in started:
            trackd.close()
