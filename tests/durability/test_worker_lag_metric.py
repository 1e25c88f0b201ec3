"""``trackd_webhook_lag_seconds`` with ``--workers 2``: the maximum over the live workers, so
the last value of a worker that died leaves ``/metrics`` with it.

A receiver that accepts connections and never answers keeps one endpoint lagging on the
worker that holds its lease; that worker is SIGKILLed and the endpoint disabled (nobody
delivers it any more): every worker's lag is then 0, and so must be the service's.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.durability.harness import Trackd, until
from tests.durability.harness import trackd_command as run_trackd
from tests.durability.test_workers import (
    EVENTS_ROUTE,
    TCP_ESTABLISHED,
    WORKERS,
    dev_key,
    scrape_each,
    series,
    socket_inodes,
    tcp_sockets,
    worker_pids,
)

LAG = "trackd_webhook_lag_seconds"
PRIVATE = {"TRACKD_WEBHOOK_ALLOW_PRIVATE": "true"}


class SilentReceiver:
    """Takes connections and never answers; remembers each one's client port."""

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.client_ports.append(writer.get_extra_info("peername")[1])
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    async def __aenter__(self) -> SilentReceiver:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Trackd]:
    trackd = Trackd(tmp_path, "", TRACKD_WORKERS=str(WORKERS), TRACKD_LOG_FORMAT="text",
                    **PRIVATE)
    try:
        await trackd.start()
        yield trackd
    finally:
        trackd.close()


async def webhooks(trackd: Trackd, *args: str) -> str:
    done = await asyncio.to_thread(run_trackd, "webhooks", *args, "--data-dir",
                                   str(trackd.data_dir), cwd=trackd.root, **PRIVATE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def holder(trackd: Trackd, client_port: int) -> int | None:
    """The worker whose socket is the receiver's client on ``client_port``."""
    sockets = tcp_sockets(client_port, TCP_ESTABLISHED)
    return next((pid for pid in worker_pids(trackd) if socket_inodes(pid) & sockets), None)


async def max_lag(trackd: Trackd) -> float:
    return max(series(samples, LAG) for samples in await scrape_each(trackd, 4))


async def test_a_dead_workers_lag_leaves_the_services_metric(workers: Trackd) -> None:
    async with SilentReceiver() as receiver:
        created = await webhooks(workers, "create", "--project", "default",
                                 "--url", f"http://127.0.0.1:{receiver.port}/hook")
        endpoint = created.strip().splitlines()[-2]
        assert endpoint.startswith("ep_"), created
        async with aiohttp.ClientSession() as session, session.post(
                f"{workers.url}{EVENTS_ROUTE}", json={"external_user_id": "u1", "name": "lag"},
                headers={"Authorization": f"Bearer {dev_key(workers)}"}) as answer:
            assert answer.status == 202
        await until(lambda: bool(receiver.client_ports), "the webhook's attempt",
                    detail=workers.output)
        victim = holder(workers, receiver.client_ports[0])
        assert victim is not None, (receiver.client_ports, worker_pids(workers))
        lagging: list[float] = []

        async def lag_seen() -> bool:
            lagging[:] = [await max_lag(workers)]
            return lagging[0] > 0

        deadline = asyncio.get_running_loop().time() + 60
        while not await lag_seen():
            assert asyncio.get_running_loop().time() < deadline, "no lag reported"
            await asyncio.sleep(0.2)

        # The holder dies with its lag > 0; nobody delivers the endpoint from now on.
        os.kill(victim, signal.SIGKILL)
        assert "disabled" in await webhooks(workers, "disable", endpoint)
        await until(lambda: len(worker_pids(workers)) == WORKERS
                    and victim not in worker_pids(workers), "a new worker",
                    detail=workers.output)
        settled: list[float] = []

        async def lag_gone() -> bool:
            settled[:] = [await max_lag(workers)]
            return settled[0] == 0

        deadline = asyncio.get_running_loop().time() + 60
        while not await lag_gone():
            assert asyncio.get_running_loop().time() < deadline, \
                f"{LAG} stayed at {settled[0]} after its worker died\n{workers.output()}"
            await asyncio.sleep(0.5)
