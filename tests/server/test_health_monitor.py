"""The health monitor's own lifecycle (trackd/server/health.py): it stops when asked, whatever
it was doing, so a server's stop (and a worker's SIGTERM) never hangs on it."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health

from trackd.server.health import HealthMonitor
from trackd.server.pipeline import PipelineConfig, WritePipeline
from trackd.storage import Store

CLOSES = 200


async def test_close_right_after_a_wake_always_returns(store: Store) -> None:
    """A wake and a close in the same turn of the loop: on Python 3.11, asyncio.wait_for
    swallowed the cancellation when the wake landed with it, and close() waited forever
    (seen as a test session that never ended)."""
    pipeline = WritePipeline(store.events, PipelineConfig())
    pipeline.start()

    async def ping() -> None:
        pass

    try:
        for _ in range(CLOSES):
            monitor = HealthMonitor(health.aio.HealthServicer(), ping, pipeline, ("x",),
                                    tracking_service="x", interval=0.001, timeout=1.0)
            await monitor.start()
            await asyncio.sleep(0)
            monitor.wake()
            async with asyncio.timeout(30):  # a bound for a hang, not a timing assertion
                await monitor.close()
    finally:
        await pipeline.close()


async def test_a_ping_sent_before_the_database_died_never_brings_it_back_up(
        store: Store) -> None:
    """The embedded database dies (mark_down) while a ping is out; that ping then answers
    (it was answered by the process that died, or raced its death). The monitor stays
    down: only a ping sent after the death may say the database is back."""
    pipeline = WritePipeline(store.events, PipelineConfig())
    pipeline.start()
    pings: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()  # each ping's answer

    async def ping() -> None:
        answer = asyncio.get_running_loop().create_future()
        pings.put_nowait(answer)
        await answer

    monitor = HealthMonitor(health.aio.HealthServicer(), ping, pipeline, ("x",),
                            tracking_service="x", interval=3600, timeout=5.0)
    try:
        check = asyncio.ensure_future(monitor.check())
        first = await pings.get()
        monitor.mark_down()
        first.set_result(None)
        await check
        assert monitor.database_up is False

        check = asyncio.ensure_future(monitor.check())
        second = await pings.get()  # a fresh ping, not the outdated one again
        second.set_result(None)
        await check
        assert monitor.database_up is True
        assert pings.empty()
    finally:
        await monitor.close()
        await pipeline.close()
