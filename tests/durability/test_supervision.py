"""The embedded database is supervised by ``trackd serve``: SIGKILLed under load (and not
restarted by the test), it comes back by itself on the same port and data; meanwhile
writes answer 503/UNAVAILABLE with a retry hint, gRPC health says NOT_SERVING and
``/readyz`` 503, and afterwards the same trackd serves again, every acknowledged event
stored exactly once. Also: one serve per data directory, and the database's own process
group."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import MongoClient

from tests.durability.harness import (
    PROJECT,
    Load,
    Outcome,
    Trackd,
    assert_acked_stored_once,
    assert_unavailable,
    event,
    post,
    process_state,
    track,
    until,
)
from tests.durability.harness import trackd_command as run_trackd
from tests.processes import free_ports
from tests.scrape import Samples, parse, value
from trackd.server.app import SERVICE_NAMES
from trackd.storage.embedded import EmbeddedDatabase, EmbeddedUnavailable
from trackd.v1.tracking_pb2_grpc import TrackingServiceStub

WARM_UP_ACKS = 200
RECOVERED_ACKS = 100
PROBE_IDS = ("evt-probe-rest", "evt-probe-grpc")
HEALTH_NAMES = ("", *SERVICE_NAMES)
READY = {"status": "ok", "checks": {"grpc_server": "ok", "database": "ok",
                                    "write_queue": "ok"}}
DOWN = {"status": "unavailable", "checks": {"grpc_server": "ok", "database": "unreachable",
                                            "write_queue": "ok"}}


@pytest.fixture
async def embedded_trackd(tmp_path: Path) -> Any:
    trackd = Trackd(tmp_path, "", TRACKD_AUTH_CACHE_SECONDS="1")
    try:
        await trackd.start()
        yield trackd
    finally:
        trackd.close()


async def trackd_command(trackd: Trackd, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_trackd, *args, "--data-dir", str(trackd.data_dir),
                                   cwd=trackd.root)


async def readiness(session: aiohttp.ClientSession, trackd: Trackd) -> tuple[int, Any]:
    async with session.get(f"{trackd.url}/readyz") as response:
        return response.status, await response.json()


async def health(channel: grpc.aio.Channel) -> dict[str, str]:
    stub = health_pb2_grpc.HealthStub(channel)
    statuses = {}
    for name in HEALTH_NAMES:
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return statuses


def all_(status: str) -> dict[str, str]:
    return dict.fromkeys(HEALTH_NAMES, status)


async def metrics(session: aiohttp.ClientSession, trackd: Trackd) -> Samples:
    async with session.get(f"{trackd.url}/metrics") as response:
        assert response.status == 200
        return parse(await response.text())


async def test_embedded_database_sigkill_under_serve_comes_back_by_itself(
        embedded_trackd: Trackd) -> None:
    trackd = embedded_trackd
    created = await trackd_command(trackd, "keys", "create", "--project", PROJECT)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    before = trackd.embedded_state()

    async with aiohttp.ClientSession() as session, \
            grpc.aio.insecure_channel(f"127.0.0.1:{trackd.grpc_port}") as channel:
        assert await readiness(session, trackd) == (200, READY)
        assert await health(channel) == all_("SERVING")
        assert value(await metrics(session, trackd), "trackd_database_up") == 1
        restarts_before = value(await metrics(session, trackd),
                                "trackd_embedded_database_restarts_total")

        async with Load(trackd, key, workers=8, grpc_workers=2) as load:
            await until(lambda: len(load.acked_ids()) >= WARM_UP_ACKS, "acks before the kill",
                        detail=load.summary)
            os.kill(before["pid"], 9)

            # While it is down (it comes back within seconds, so look often).
            seen_down: list[tuple[int, Any]] = []
            seen_not_serving: list[dict[str, str]] = []
            seen_gauge_down = False
            probes: list[Outcome] = []
            deadline = time.monotonic() + 60
            while not (seen_down and seen_not_serving and seen_gauge_down) \
                    and time.monotonic() < deadline:
                answer = await readiness(session, trackd)
                if answer[0] != 200:
                    seen_down.append(answer)
                    if not probes:
                        # Sent the moment readyz says down, through both doors: refused
                        # at once. The load's own clients cannot show this reliably: on
                        # a fast machine the database is back before their in-flight
                        # requests fail (the driver's 1 s server selection), so none of
                        # them is sent while it is down.
                        probes = list(await asyncio.gather(
                            post(session, trackd.url, key, "/api/v1/events",
                                 event(0, PROBE_IDS[0]), PROBE_IDS[:1]),
                            track(TrackingServiceStub(channel), key, 0, PROBE_IDS[1])))
                statuses = await health(channel)
                if statuses == all_("NOT_SERVING"):
                    seen_not_serving.append(statuses)
                if value(await metrics(session, trackd), "trackd_database_up") == 0:
                    seen_gauge_down = True
                await asyncio.sleep(0.02)
            assert seen_down, "readyz never said the database was down"
            assert seen_down[0] == (503, DOWN)
            assert seen_not_serving, "gRPC health never said NOT_SERVING"
            assert seen_gauge_down, "/metrics never said trackd_database_up 0"

            # Back by itself: ready, serving, acknowledging.
            await until(lambda: process_state(before["pid"]) == "", "the dead one reaped")
            await until(lambda: trackd.embedded_state()["pid"] != before["pid"],
                        "the database restarted", detail=trackd.output)
            recovered_at = time.monotonic()
            await until(lambda: load.count(lambda o: o.acked and o.sent >= recovered_at)
                        >= RECOVERED_ACKS, "acks after the restart",
                        detail=lambda: f"{load.summary()}\n{trackd.output()}")
            await load.stop()
        assert await readiness(session, trackd) == (200, READY)
        assert await health(channel) == all_("SERVING")
        after_metrics = await metrics(session, trackd)
        assert value(after_metrics, "trackd_database_up") == 1
        assert value(after_metrics, "trackd_embedded_database_restarts_total") \
            == restarts_before + 1

    outcomes = load.outcomes
    not_acked = [o for o in outcomes if not o.acked]
    assert not_acked, "no request was refused while the database was down"
    assert_unavailable(not_acked)  # 503 + Retry-After / UNAVAILABLE + RetryInfo; no timeout
    assert [o.status for o in probes] == ["503", "grpc:UNAVAILABLE"], probes
    assert_unavailable(probes)

    after = trackd.embedded_state()
    assert after["port"] == before["port"]  # the same port, so every client just reconnects
    client: MongoClient[dict[str, Any]] = MongoClient(trackd.embedded_uri,
                                                      serverSelectionTimeoutMS=30_000)
    with client:
        stored = [str(doc["event_id"]) for doc in client["trackd"]["events"].find(
            {"project_id": PROJECT}, {"_id": 0, "event_id": 1})]
    assert_acked_stored_once(load.acked_ids(), stored)
    assert not set(PROBE_IDS) & set(stored)  # refused is not stored

    lines = trackd.stderr.splitlines()
    died = [line for line in lines if "embedded database (pid" in line and "died" in line]
    assert len(died) == 1, trackd.output()
    assert (f"embedded database (pid {before['pid']}) died: killed by signal SIGKILL; "
            f"restarting it on port {before['port']} in 0.5 s (restart 1)") in died[0]
    assert any(f"embedded database restarted (pid {after['pid']}) on "
               f"127.0.0.1:{before['port']}" in line for line in lines), trackd.output()


async def test_second_serve_on_a_served_data_dir_exits_at_once_naming_the_first(
        embedded_trackd: Trackd) -> None:
    grpc_port, http_port = free_ports(2)
    second = await asyncio.to_thread(
        run_trackd, "serve", "--data-dir", str(embedded_trackd.data_dir),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), cwd=embedded_trackd.root)
    assert second.returncode == 1
    assert second.stdout == ""
    assert second.stderr.splitlines() == [
        f"trackd: {embedded_trackd.data_dir} is already served by another trackd serve "
        f"(pid {embedded_trackd.pid}, gRPC on 127.0.0.1:{embedded_trackd.grpc_port}, REST on "
        f"127.0.0.1:{embedded_trackd.http_port}); stop it, or give this one another "
        f"--data-dir (TRACKD_DATA_DIR)"]
    state = json.loads((embedded_trackd.data_dir / "serve.json").read_text())
    assert state == {"pid": embedded_trackd.pid, "host": "127.0.0.1",
                     "grpc_port": embedded_trackd.grpc_port,
                     "http_port": embedded_trackd.http_port}
    # The first one is untouched.
    async with aiohttp.ClientSession() as session:
        assert await readiness(session, embedded_trackd) == (200, READY)


async def test_database_runs_in_its_own_process_group_and_stops_with_trackd(
        embedded_trackd: Trackd) -> None:
    database_pid = embedded_trackd.embedded_state()["pid"]
    # A terminal's Ctrl-C goes to the foreground process group: trackd's, not the database's.
    assert os.getpgid(database_pid) != os.getpgid(embedded_trackd.pid)
    assert os.getsid(database_pid) == database_pid
    embedded_trackd.signal(2)  # SIGINT: trackd drains, then stops the database
    assert await embedded_trackd.exit_status() == 0
    await until(lambda: process_state(database_pid) == "", "the database to stop")
    assert "stopped cleanly" in embedded_trackd.stderr
    assert not (embedded_trackd.data_dir / "serve.json").exists()


async def test_keys_beside_a_restarting_database_waits_for_it(
        embedded_trackd: Trackd) -> None:
    os.kill(embedded_trackd.embedded_state()["pid"], 9)
    listed = await trackd_command(embedded_trackd, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("KEY ID")
    for line in listed.stderr.splitlines():  # if it had to wait, it said for what
        assert ("the embedded database of" in line and "waiting up to 30 s" in line) \
            or "answers again" in line, listed.stderr


def test_attach_gives_up_after_its_bound_saying_what_it_waited_for(tmp_path: Path) -> None:
    """Another process holds the database's lock, but nothing answers on its port."""
    (tmp_path / "embedded.json").write_text(json.dumps({"pid": 1, "port": free_ports(1)[0]}))
    with (tmp_path / "embedded.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        database = EmbeddedDatabase(tmp_path, attach_timeout=1)
        with pytest.raises(EmbeddedUnavailable) as caught:
            database.start()
    port = json.loads((tmp_path / "embedded.json").read_text())["port"]
    assert str(caught.value) == (
        f"waited 1 s for the embedded database of {tmp_path} (port {port}) to answer, in "
        f"vain: another process holds embedded.lock (trackd serve?) but its database is "
        f"down; see {tmp_path / 'secantus.log'}")
