"""Webhooks with real processes: ``trackd webhooks`` on a database with no trackd serving,
and two ``trackd serve`` instances on one database, the one delivering SIGKILLed under
load: every stored event still reaches the receiver, none skipped, each user's in order.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from tests.durability.harness import (
    PROJECT,
    Database,
    StartTrackd,
    post,
    stored_events,
    trackd_command,
)
from tests.outbound.helpers import Reply, receiving, verify

PRIVATE = {"TRACKD_WEBHOOK_ALLOW_PRIVATE": "true"}


async def webhooks(database: Database, *args: str, **settings: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(trackd_command, "webhooks", *args, "--mongodb-uri",
                                     database.uri, cwd=database.root, **settings)
    return result.returncode, result.stdout, result.stderr


async def test_the_cli_manages_endpoints_without_a_running_serve(database: Database) -> None:
    async with receiving() as receiver:
        status, out, err = await webhooks(database, "create", "--project", PROJECT, "--url",
                                          receiver.url, "--event", "signed_up", **PRIVATE)
        assert status == 0, err
        endpoint_id, secret = out.splitlines()[-2:]
        print(f"\n$ trackd webhooks create --project {PROJECT} --url {receiver.url} "
              f"--event signed_up\n{out}")
        assert re.fullmatch(r"ep_[0-9a-f]{24}", endpoint_id)
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)

        status, out, err = await webhooks(database, "create", "--project", PROJECT, "--url",
                                          receiver.url)
        assert status == 2
        assert out == ""
        assert err.splitlines() == [
            "trackd: url: host 127.0.0.1 is not allowed: 127.0.0.1 is a loopback address "
            "(set TRACKD_WEBHOOK_ALLOW_PRIVATE=true for local development)"]

        status, out, _ = await webhooks(database, "list")
        assert status == 0
        (line,) = [line for line in out.splitlines() if line.startswith(endpoint_id)]
        assert receiver.url in line
        assert " enabled " in line
        assert secret not in out

        status, out, _ = await webhooks(database, "rotate-secret", endpoint_id)
        new_secret = out.splitlines()[-1]
        assert status == 0
        assert new_secret.startswith("whsec_")
        assert new_secret != secret

        assert (await webhooks(database, "disable", endpoint_id))[1] == \
            f"{endpoint_id}: disabled (by hand)\n"
        _, out, _ = await webhooks(database, "list")
        assert "disabled (by hand)" in out
        assert (await webhooks(database, "enable", endpoint_id))[1] == f"{endpoint_id}: enabled\n"

        _, out, _ = await webhooks(database, "replay", endpoint_id, "--failed")
        assert out.splitlines()[-1] == "0"
        since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        _, out, _ = await webhooks(database, "replay", endpoint_id, "--since", since)
        assert out.splitlines()[-1] == "0"
        status, _, err = await webhooks(database, "replay", endpoint_id, "--since",
                                        "2026-12-07T10:00:00")
        assert status == 2
        assert "has no offset" in err

        status, out, _ = await webhooks(database, "attempts", endpoint_id)
        assert status == 0
        assert out.splitlines()[0].split() == ["TIME", "WEBHOOK-ID", "RESULT", "LATENCY"]

        assert (await webhooks(database, "delete", endpoint_id))[1] == f"deleted {endpoint_id}\n"
        _, out, _ = await webhooks(database, "list")
        assert endpoint_id not in out
        status, _, err = await webhooks(database, "delete", endpoint_id)
        assert status == 2
        assert err.strip() == f"trackd: no webhook endpoint with id '{endpoint_id}'"


async def test_sigkill_of_the_delivering_instance_skips_nothing_and_keeps_order(
        database: Database, database_key: str, start_trackd: StartTrackd,
        tmp_path: Path) -> None:
    users, per_user = 6, 40
    settings = {**PRIVATE, "TRACKD_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms,1s,1s,2s,5s,10s"}
    flaky = {"n": 0}

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        flaky["n"] += 1  # one answer in ten fails: retries are in flight at the kill
        return Reply(500 if flaky["n"] % 10 == 0 else 200)

    async with receiving(behave) as receiver:
        status, out, err = await webhooks(database, "create", "--project", PROJECT, "--url",
                                          receiver.url, **PRIVATE)
        assert status == 0, err
        endpoint_id, secret = out.splitlines()[-2:]
        first = await start_trackd(**settings)
        second = await start_trackd(**settings)
        endpoints = database.client()["trackd"]["webhook_endpoints"]

        async def holder() -> str:
            for _ in range(600):
                doc = await asyncio.to_thread(endpoints.find_one, {"_id": endpoint_id})
                if doc and doc.get("holder"):
                    return str(doc["holder"])
                await asyncio.sleep(0.1)
            raise AssertionError("no instance took the endpoint")

        pid = int((await holder()).split(":")[1])
        victim, survivor = (first, second) if pid == first.pid else (second, first)
        assert pid == victim.pid

        async def user(index: int, session: aiohttp.ClientSession) -> None:
            for n in range(per_user):
                body = {"external_user_id": f"user_{index}", "name": "step",
                        "properties": {"n": n}}
                outcome = await post(session, survivor.url, database_key, "/api/v1/events",
                                     body, [])
                assert outcome.status == "202", outcome

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            load = asyncio.gather(*(user(i, session) for i in range(users)))
            await receiver.wait_for(lambda s: len(s) >= 60)
            victim.close()  # SIGKILL, mid-load, mid-retries
            await load
        stored = await asyncio.to_thread(stored_events, database)
        assert len(stored) == users * per_user
        await receiver.wait_for(
            lambda s: {x.json["data"]["id"] for x in s if x.status == 200}
            >= {e["event_id"] for e in stored}, seconds=120)
        new_holder = await holder()
        assert int(new_holder.split(":")[1]) == survivor.pid

    seen: dict[str, list[int]] = defaultdict(list)
    for s in receiver.delivered():
        verify(secret, s)
        data = s.json["data"]
        seen[data["user_id"]].append(data["properties"]["n"])
    for name, steps in seen.items():
        firsts = list(dict.fromkeys(steps))  # a resend after the crash may repeat some
        assert firsts == list(range(per_user)), (name, steps)
    resent = sum(len(steps) - per_user for steps in seen.values())
    print(f"\n{users * per_user} events, all delivered in per-user order; "
          f"{resent} resent around the SIGKILL")
