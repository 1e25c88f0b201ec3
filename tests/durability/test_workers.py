"""``trackd serve --workers 2`` on an empty data directory, as real processes: one
supervisor (the serve lock, the embedded database, the ports, one development key) and two
workers sharing both ports.

Which worker took a connection is read from /proc: the kernel lists each TCP connection
with its socket's inode, and each worker's open sockets are links in /proc/<pid>/fd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from pymongo import MongoClient

from tests.durability.harness import (
    PROJECT,
    Load,
    Trackd,
    assert_acked_stored_once,
    process_state,
    track,
    until,
)
from tests.durability.harness import trackd_command as run_trackd
from tests.scrape import Samples, parse, value
from trackd.storage.embedded import EmbeddedDatabase
from trackd.v1 import tracking_pb2_grpc

WORKERS = 2
EVENTS_ROUTE = "/api/v1/events"
TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"
WARM_UP_ACKS = 100
RECOVERED_ACKS = 100


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Trackd]:
    trackd = Trackd(tmp_path, "", TRACKD_WORKERS=str(WORKERS), TRACKD_LOG_FORMAT="text")
    try:
        await trackd.start()
        yield trackd
    finally:
        trackd.close()


def worker_pids(trackd: Trackd) -> list[int]:
    """The supervisor's live worker processes (``python -m trackd.cli.workers``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if ppid == trackd.pid and b"trackd.cli.workers" in cmdline:
                found.append(int(entry.name))
    return sorted(found)


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if match := re.fullmatch(r"socket:\[(\d+)\]", str(fd.readlink())):
                inodes.add(int(match.group(1)))
    return inodes


def tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets in ``state`` whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    inodes.add(int(fields[9]))
    return inodes


def per_worker(trackd: Trackd, port: int, state: str) -> dict[int, int]:
    """How many sockets of ``port`` in ``state`` each worker holds."""
    sockets = tcp_sockets(port, state)
    return {pid: len(socket_inodes(pid) & sockets) for pid in worker_pids(trackd)}


async def trackd_command(trackd: Trackd, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_trackd, *args, cwd=trackd.root)


async def project_key(trackd: Trackd) -> str:
    made = await trackd_command(trackd, "keys", "create", "--project", PROJECT,
                                "--data-dir", str(trackd.data_dir))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def dev_key(trackd: Trackd) -> str:
    out = trackd.out_path.read_text()
    assert out.count("Created a development API key") == 1, trackd.output()
    return out.strip().splitlines()[-1].strip()


def stored_ids(uri: str) -> list[str]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=30_000)
    with client:
        return [str(doc["event_id"]) for doc in client["trackd"]["events"].find(
            {"project_id": PROJECT}, {"_id": 0, "event_id": 1})]


async def post_on_connections(trackd: Trackd, key: str, connections: int) -> list[int]:
    """``connections`` requests at once, each on a connection of its own, kept open."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))
    headers = {"Authorization": f"Bearer {key}"}

    async def one(n: int) -> int:
        async with session.post(f"{trackd.url}/api/v1/events", headers=headers,
                                json={"external_user_id": f"u{n}", "name": "spread"}) as r:
            await r.read()
            return r.status

    try:
        statuses = await asyncio.gather(*(one(n) for n in range(connections)))
        assert statuses == [202] * connections, statuses
        # Still open (kept alive in the pool): each is one ESTABLISHED socket of a worker.
        spread = per_worker(trackd, trackd.http_port, TCP_ESTABLISHED)
        assert sum(spread.values()) == connections, spread
        assert all(count > 0 for count in spread.values()), f"{spread}\n{trackd.output()}"
        return list(statuses)
    finally:
        await session.close()


async def test_two_workers_share_both_ports_and_each_takes_requests(workers: Trackd) -> None:
    pids = worker_pids(workers)
    assert len(pids) == WORKERS
    assert f"{WORKERS} workers (pids {' '.join(map(str, pids))})" in workers.stderr
    # Both workers listen on both shared ports; the supervisor, which holds them, does not.
    for port in (workers.http_port, workers.grpc_port):
        assert per_worker(workers, port, TCP_LISTEN) == dict.fromkeys(pids, 1)
        assert not socket_inodes(workers.pid) & tcp_sockets(port, TCP_LISTEN)
    state = json.loads((workers.data_dir / "serve.json").read_text())
    assert state == {"pid": workers.pid, "host": "127.0.0.1",
                     "grpc_port": workers.grpc_port, "http_port": workers.http_port}

    key = dev_key(workers)
    # 32 connections over two listeners: all on one would be a 1 in 2^31 chance (16 gRPC
    # connections: 1 in 2^15).
    assert await post_on_connections(workers, key, 32) == [202] * 32

    # A subchannel pool of each channel's own: each is a connection of its own.
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{workers.grpc_port}",
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(16)]
    try:
        answers = await asyncio.gather(*(
            track(tracking_pb2_grpc.TrackingServiceStub(channel), key, n, f"grpc-{n}")
            for n, channel in enumerate(channels)))
        assert [answer.status for answer in answers] == ["grpc:OK"] * 16, answers
        spread = per_worker(workers, workers.grpc_port, TCP_ESTABLISHED)
        assert sum(spread.values()) == 16, spread
        assert all(spread.values()), spread
    finally:
        for channel in channels:
            await channel.close()


async def test_exactly_one_development_key_on_an_empty_data_dir(workers: Trackd) -> None:
    secret = dev_key(workers)
    assert secret.startswith("trk_")
    listed = await trackd_command(workers, "keys", "list", "--data-dir", str(workers.data_dir))
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1, rows
    assert " default " in rows[0], rows
    assert rows[0].endswith("active"), rows
    assert secret not in workers.stderr


async def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(
        workers: Trackd) -> None:
    key = await project_key(workers)
    victim, survivor = worker_pids(workers)
    async with Load(workers, key, workers=8) as load:
        await until(lambda: load.count(lambda o: o.acked) >= WARM_UP_ACKS, "acks",
                    detail=load.summary)
        os.kill(victim, signal.SIGKILL)
        restarted: list[int] = []

        def replaced() -> bool:
            # One reading of /proc per check, so the pids asserted on are the ones that met it.
            restarted[:] = worker_pids(workers)
            return len(restarted) == WORKERS and victim not in restarted

        await until(replaced, "a new worker", detail=workers.output)
        assert survivor in restarted, (restarted, workers.output())
        [new] = set(restarted) - {survivor}
        await until(lambda: f"(pid {new}) is serving" in workers.stderr,
                    "the new worker serving", detail=workers.output)
        count = load.count(lambda o: o.acked)
        await until(lambda: load.count(lambda o: o.acked) >= count + RECOVERED_ACKS,
                    "acks after the restart", detail=load.summary)
        await load.stop()
    # The new worker takes connections too.
    assert await post_on_connections(workers, key, 32) == [202] * 32

    died = [line for line in workers.stderr.splitlines() if "died" in line]
    assert len(died) == 1, workers.output()
    assert re.search(rf"trackd: worker [12] \(pid {victim}\) died: killed by signal SIGKILL; "
                     r"restarting it in 0\.5 s \(restart 1\)$", died[0]), died
    # Requests on the killed worker's connections failed (not acknowledged); every
    # acknowledged event is stored, once.
    assert_acked_stored_once(load.acked_ids(), stored_ids(workers.embedded_uri))


async def test_sigterm_drains_every_worker_then_stops_the_database(
        workers: Trackd, tmp_path: Path) -> None:
    key = await project_key(workers)
    pids = worker_pids(workers)
    database_pid = workers.embedded_state()["pid"]
    async with Load(workers, key, workers=8, until_disconnected=True) as load:
        await until(lambda: load.count(lambda o: o.acked) >= WARM_UP_ACKS, "acks",
                    detail=load.summary)
        workers.signal(signal.SIGTERM)
        assert await workers.exit_status() == 0, workers.output()
        await until(lambda: load.finished, "the clients to notice", detail=load.summary)
    for pid in (*pids, database_pid):
        assert process_state(pid) == "", f"pid {pid} outlived trackd serve"
    assert not (workers.data_dir / "serve.json").exists()
    lines = workers.stderr.splitlines()
    assert sum("stopped cleanly" in line for line in lines) == WORKERS + 1, workers.output()
    assert lines[-1].endswith("trackd: stopped cleanly"), workers.output()
    # Nothing acknowledged was lost in the drain.
    with EmbeddedDatabase(workers.data_dir) as database:
        assert_acked_stored_once(load.acked_ids(), stored_ids(database.uri))


async def test_the_shared_ports_are_in_use_for_any_other_serve(workers: Trackd) -> None:
    uri = workers.embedded_uri
    for extra in ([], ["--workers", "2"]):
        other = await trackd_command(
            workers, "serve", "--mongodb-uri", uri, "--http-port", str(workers.http_port),
            "--grpc-port", "0", *extra)
        assert other.returncode == 1, other.stderr
        assert other.stderr.splitlines()[-1] == (
            f"trackd: cannot listen for the REST gateway on 127.0.0.1:{workers.http_port}: "
            "address already in use; choose another port with --http-port or "
            "TRACKD_HTTP_PORT, or another address with --host or TRACKD_HOST"), other.stderr


async def scrape_each(trackd: Trackd, times: int) -> list[Samples]:
    """``/metrics`` ``times`` over, each on a new connection (so from either worker)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = []
        for _ in range(times):
            async with session.get(f"{trackd.url}/metrics") as response:
                assert response.status == 200
                answers.append(parse(await response.text()))
        return answers


def series(samples: Samples, name: str, **labels: str) -> float:
    return value(samples, name, **labels)


async def test_metrics_through_the_shared_port_are_the_whole_services(
        workers: Trackd) -> None:
    key = dev_key(workers)
    [before] = await scrape_each(workers, 1)
    sent = 40
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection, a new draw
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(sent):
            async with session.post(f"{workers.url}{EVENTS_ROUTE}",
                                    headers={"Authorization": f"Bearer {key}"},
                                    json={"external_user_id": f"m{n}", "name": "m"}) as r:
                assert r.status == 202
    spread = per_worker(workers, workers.http_port, TCP_LISTEN)
    assert len(spread) == WORKERS
    labels = {"dialect": "vibefollow", "route": EVENTS_ROUTE, "method": "POST",
              "status": "202"}
    # Whichever worker answers the scrape, it reports every worker's counts.
    for after in await scrape_each(workers, 8):
        assert series(after, "trackd_http_requests_total", **labels) \
            - series(before, "trackd_http_requests_total", **labels) == sent
        assert series(after, "trackd_events_total", outcome="stored", source="vibefollow") \
            - series(before, "trackd_events_total", outcome="stored",
                     source="vibefollow") == sent
        # A gauge is the sum over the live workers: nothing queued once all are answered.
        assert series(after, "trackd_write_queue_events") == 0
    # A dead worker's counts stay in the sums; its gauges leave with it.
    victim = worker_pids(workers)[0]
    os.kill(victim, signal.SIGKILL)
    await until(lambda: len(worker_pids(workers)) == WORKERS
                and victim not in worker_pids(workers), "a new worker", detail=workers.output)
    [new] = set(worker_pids(workers)) - set(spread)
    await until(lambda: f"(pid {new}) is serving" in workers.stderr, "the new worker",
                detail=workers.output)
    for after in await scrape_each(workers, 4):
        assert series(after, "trackd_events_total", outcome="stored", source="vibefollow") \
            - series(before, "trackd_events_total", outcome="stored",
                     source="vibefollow") == sent
        assert series(after, "trackd_database_up") == 1
    # The supervisor's own count: a restart of the embedded database it runs.
    died = workers.embedded_state()["pid"]
    os.kill(died, signal.SIGKILL)
    await until(lambda: "embedded database restarted" in workers.stderr, "the database back",
                detail=workers.output)
    for after in await scrape_each(workers, 4):
        assert series(after, "trackd_embedded_database_restarts_total") == 1
