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
