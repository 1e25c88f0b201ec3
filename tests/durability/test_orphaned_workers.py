"""``trackd serve --workers 2`` whose supervisor is killed outright (SIGKILL): no worker
and no embedded database outlives it, even when the workers' drain cannot finish.

The workers learn of it from ``PR_SET_PDEATHSIG`` (SIGTERM, a drain) and from their own
watch of their parent, which ends a drain that has not finished within its bound
(``2 * TRACKD_SHUTDOWN_GRACE_SECONDS`` + 5 s). Only the end is asserted, with a generous
wait; no test asserts how long it took.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.durability.harness import (
    STOP_TIMEOUT,
    Trackd,
    alive,
    process_state,
    until,
)
from tests.durability.test_workers import WORKERS, dev_key, post_on_connections, worker_pids

# Short, so that the drain's bound (2 * 1 + 5 s) is well inside the wait below.
GRACE_SECONDS = "1"


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Trackd]:
    trackd = Trackd(tmp_path, "", TRACKD_WORKERS=str(WORKERS), TRACKD_LOG_FORMAT="text",
                    TRACKD_SHUTDOWN_GRACE_SECONDS=GRACE_SECONDS)
    try:
        await trackd.start()
        yield trackd
    finally:
        trackd.close()


def leftovers(pids: list[int]) -> str:
    return ", ".join(f"{pid} ({process_state(pid)})" for pid in pids if alive(pid))


async def test_a_killed_supervisor_leaves_no_worker_and_no_database(workers: Trackd) -> None:
    pids = worker_pids(workers)
    assert len(pids) == WORKERS, workers.output()
    database = workers.embedded_state()["pid"]
    # Both workers have served (32 connections: all on one worker is a 1 in 2^31 chance).
    assert await post_on_connections(workers, dev_key(workers), 32) == [202] * 32
    os.kill(workers.pid, signal.SIGKILL)
    everything = [*pids, database]
    await until(lambda: not any(alive(pid) for pid in everything),
                "every worker and the database to end", STOP_TIMEOUT,
                detail=lambda: f"alive: {leftovers(everything)}\n{workers.output()}")


async def test_workers_end_when_the_supervisor_dies_with_the_database_frozen(
        workers: Trackd) -> None:
    """The worst case for a drain: the database never answers again (SIGSTOP), so
    nothing that waits on it finishes; each worker still ends within its bound."""
    pids = worker_pids(workers)
    assert len(pids) == WORKERS, workers.output()
    database = workers.embedded_state()["pid"]
    assert await post_on_connections(workers, dev_key(workers), 32) == [202] * 32
    os.kill(database, signal.SIGSTOP)
    try:
        await until(lambda: process_state(database) in ("T", "t"), "the database to stop")
        os.kill(workers.pid, signal.SIGKILL)
        await until(lambda: not any(alive(pid) for pid in pids),
                    "every worker to end", STOP_TIMEOUT,
                    detail=lambda: f"alive: {leftovers(pids)}\n{workers.output()}")
    finally:
        # Its SIGTERM (PR_SET_PDEATHSIG) waits while it is stopped; the fixture's close
        # stops it in any case.
        os.kill(database, signal.SIGCONT)
