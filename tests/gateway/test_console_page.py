"""``/console`` in a real headless Chromium (Debian's ``chromium``, driven by the pinned npm
``playwright-core``, ``console_page.mjs``, one command at a time) against the real gateway
and server: sign in by keyboard; events sent through two REST dialects and gRPC appear
with their request ids; a 422 refusal shows its status, reason and field; a duplicate;
a property holding markup is shown as text and never runs; filters; pause and resume;
a tracking plan's violation on its event's row (observe mode) and a blocking plan's
quarantined decision; the overview's chart and top violations drawn by the page.
Screenshots of the live view (laptop and phone) and the overview go to the test's
artifacts folder, whose path the test prints.

How long each event took from its acknowledgement to its row is printed, not asserted
(the machine may be loaded); the test waits for each with a generous bound.

Chromium is installed by ``.ci/run``; without it the test is skipped, except in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.gateway.test_docs_page import CHROMIUM, NODE, _missing
from tests.helpers import KeyFactory
from tests.server.plan_helpers import set_plan
from trackd.gateway.app import create_app
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import TrackdServer
from trackd.server.auth import ALL_SCOPES
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

SCRIPT = Path(__file__).with_name("console_page.mjs")
STEP_SECONDS = 120.0  # a bound for a stuck browser, never asserted on
MARKUP = {"script": "<script>window.__injected = 1</script>",
          "img": '<img src="x" onerror="window.__injected = 2">', "b": "<b>bold</b>"}


class Browser:
    """The driver process: one JSON command in, one JSON answer out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def answer(self) -> Any:
        assert self.process.stdout is not None
        async with asyncio.timeout(STEP_SECONDS):
            while True:
                line = await self.process.stdout.readline()
                assert line, "the browser driver exited"
                with contextlib.suppress(json.JSONDecodeError):
                    reply = json.loads(line)
                    if isinstance(reply, dict) and ("ok" in reply or "error" in reply):
                        break
        assert "error" not in reply, reply.get("error", "")
        return reply["ok"]

    async def do(self, command: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": command, **fields}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer()


@contextlib.asynccontextmanager
async def browser(base_url: str, profile: Path) -> AsyncIterator[Browser]:
    assert NODE is not None
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        NODE, str(SCRIPT), base_url, CHROMIUM, str(profile), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    driver = Browser(process)
    try:
        assert await driver.answer() == {"ready": True}
        yield driver
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def now_ms() -> float:
    return time.time() * 1000


async def test_console_in_a_browser(server: TrackdServer, store: Store,
                                    make_key: KeyFactory, tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    print(f"console screenshots: {artifacts}")
    reader = await make_key("acme", ALL_SCOPES)
    writer = await make_key("acme", ("track:events",))
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    tracking = tracking_pb2_grpc.TrackingServiceStub(channel)
    auth = {"Authorization": f"Bearer {writer}"}
    latencies: dict[str, float] = {}
    try:
        async with TestServer(app, host="127.0.0.1", port=0) as gateway, \
                ClientSession(str(gateway.make_url(""))) as http, \
                browser(str(gateway.make_url("")).rstrip("/"), tmp_path / "profile") as page:
            base_url = str(gateway.make_url("")).rstrip("/")

            async def vibefollow(name: str, **properties: Any) -> tuple[int, str, float]:
                async with http.post("/api/v1/events", headers=auth, json={
                        "external_user_id": "u_vf", "name": name,
                        "properties": properties}) as response:
                    return response.status, response.headers["X-Request-Id"], now_ms()

            async def grpc_event(name: str, event_id: str = "") -> tuple[str, bool, float]:
                request_id = f"grpc-{uuid.uuid4().hex[:12]}"
                answer = await tracking.TrackEvent(tracking_pb2.TrackEventRequest(
                    event=tracking_pb2.Event(name=name, anonymous_id="anon_g",
                                             event_id=event_id)),
                    metadata=(("authorization", f"Bearer {writer}"),
                              ("x-request-id", request_id)))
                return request_id, answer.duplicate, now_ms()

            assert (await page.do("open"))["title"] == "trackd console"
            refused = await page.do("signin_error", key="trk_not_a_key")
            assert refused["text"].startswith("401: ")
            signed_in = await page.do("signin", key=reader)
            assert signed_in == {"stored": 1, "url": f"{base_url}/console"}

            # Three doors: VibeFollow, Flywheel, gRPC.
            status, vf_id, vf_ack = await vibefollow("signup_vf", plan="trial")
            assert status == 202
            async with http.post("/v1/events", json={"event": {
                    "event": "checkout_fw", "user_id": "u_fw", "properties": {"total": 12}}},
                    headers={"Authorization": writer, "Auth-Type": "api"}) as response:
                assert response.status == 200
                fw_id, fw_ack = response.headers["X-Request-Id"], now_ms()
            grpc_id, _, grpc_ack = await grpc_event("ping_grpc")
            for name, request_id, ack in (("vibefollow", vf_id, vf_ack),
                                          ("flywheel", fw_id, fw_ack),
                                          ("grpc", grpc_id, grpc_ack)):
                row = await page.do("row", list="events", text=f"request {request_id}")
                latencies[name] = row["at"] - ack
                assert name in row["text"]

            # A refusal (VibeFollow answers validation errors with 422), and a duplicate.
            status, bad_id, bad_answered = await vibefollow("bad_vf", **{"$bad": 1})
            assert status == 422
            row = await page.do("row", list="decisions", text=f"request {bad_id}")
            latencies["refusal"] = row["at"] - bad_answered
            for shown in ("refused", "HTTP 422", "INVALID_ARGUMENT", "properties.$bad",
                          "vibefollow"):
                assert shown in row["text"]
            await grpc_event("dup_grpc", "dup-console-1")
            dup_id, duplicate, dup_ack = await grpc_event("dup_grpc", "dup-console-1")
            assert duplicate
            row = await page.do("row", list="decisions", text=f"request {dup_id}")
            latencies["duplicate"] = row["at"] - dup_ack
            print(f"answer to row, ms: { {k: round(v) for k, v in latencies.items()} }")
            assert "duplicate" in row["text"]
            assert "already stored: dup_grpc (dup-console-1)" in row["text"]

            # Markup in a property is text.
            status, markup_id, _ = await vibefollow("markup_vf", **MARKUP)
            assert status == 202
            await page.do("row", list="events", text=f"request {markup_id}")
            expanded = await page.do("expand", text=f"request {markup_id}")
            assert expanded["open"] is True
            assert json.loads(expanded["pretty"]) == MARKUP
            assert (expanded["scripts"], expanded["injected"]) == (0, None)

            # Filters.
            shown = await page.do("filter", id="f-name", value="checkout")
            assert shown == {"events": ["checkout_fw|stored"], "decisions": []}
            await page.do("filter", id="f-name", value="")
            shown = await page.do("filter", id="f-door", value="grpc")
            assert sorted(shown["events"]) == ["dup_grpc|stored", "ping_grpc|stored"]
            assert shown["decisions"] == ["dup_grpc|duplicate"]
            await page.do("filter", id="f-door", value="")
            shown = await page.do("filter", id="f-decision", value="refused")
            assert shown == {"events": [], "decisions": ["|refused"]}
            await page.do("filter", id="f-decision", value="")
            shown = await page.do("filter", id="f-user", value="u_fw")
            assert shown == {"events": ["checkout_fw|stored"], "decisions": []}
            await page.do("filter", id="f-user", value="")

            # Pause: what arrives is counted and held; resume shows it.
            assert await page.do("pause") == {"pressed": "true", "label": "Resume",
                                              "badge": False}
            _, held_1, _ = await vibefollow("held_1")
            _, held_2, _ = await vibefollow("held_2")
            counted = await page.do("paused_count", count=2)
            assert counted["text"] == "2 arrived while paused"
            assert (await page.do("has_row", list="events", text=f"request {held_1}")) == {
                "count": 0}
            assert await page.do("pause") == {"pressed": "false", "label": "Pause",
                                              "badge": False}
            await page.do("row", list="events", text=f"request {held_1}")
            await page.do("row", list="events", text=f"request {held_2}")

            # A tracking plan. Observe mode: the event is stored with its violation, shown
            # on its row. The plan reaches the server's cache by a change stream, so an
            # event is sent again until it was judged by this version.
            async def plan_event(properties: dict[str, Any]
                                 ) -> tuple[str, tracking_pb2.TrackEventResponse | None]:
                request_id = f"grpc-{uuid.uuid4().hex[:12]}"
                request = tracking_pb2.TrackEventRequest(event=tracking_pb2.Event(
                    name="user_signed_up", anonymous_id="anon_p"))
                request.event.properties.update(properties)
                try:
                    return request_id, await tracking.TrackEvent(request, metadata=(
                        ("authorization", f"Bearer {writer}"), ("x-request-id", request_id)))
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    return request_id, None

            observe = await set_plan(store)
            async with asyncio.timeout(STEP_SECONDS):
                while True:
                    observed_id, answer = await plan_event({"plan": 2})
                    assert answer is not None
                    if answer.plan_version == observe:
                        break
                    await asyncio.sleep(0.1)
            row = await page.do("row", list="events", text=f"request {observed_id}")
            for shown in ("1 plan violation(s)", "wrong type", "properties.plan",
                          "must be of type string", f"plan version {observe}"):
                assert shown in row["text"]
            # Block mode: the request is refused, its event quarantined, and the decision
            # says why. Events the old version still judged were stored (and counted).
            block = await set_plan(store, enforcement="block")
            stored_missing = 0
            async with asyncio.timeout(STEP_SECONDS):
                while True:
                    blocked_id, answer = await plan_event({"source": "ads"})
                    if answer is None:
                        break
                    assert answer.plan_version < block
                    stored_missing += len(answer.violations)
                    await asyncio.sleep(0.1)
            row = await page.do("row", list="decisions", text=f"request {blocked_id}")
            for shown in ("quarantined", "TRACKING_PLAN_VIOLATION", "missing required",
                          "event.properties.plan", "is required by the tracking plan"):
                assert shown in row["text"]
            assert "ads" not in row["text"]
            shown = await page.do("filter", id="f-decision", value="quarantined")
            assert shown == {"events": [], "decisions": ["|quarantined"]}
            await page.do("filter", id="f-decision", value="")

            await page.do("screenshot", path=str(artifacts / "console-live.png"))
            # The size of docs/console.png (the repository keeps it under 150 KB).
            await page.do("viewport", width=1024, height=640)
            await page.do("screenshot", path=str(artifacts / "console-small.png"))
            await page.do("viewport", width=390, height=844)
            await page.do("screenshot", path=str(artifacts / "console-phone.png"))
            await page.do("viewport", width=1360, height=900)

            await page.do("view", name="overview")
            chart = await page.do("chart")
            assert chart["bars"] >= 3
            assert {"stored", "duplicates", "refused INVALID_ARGUMENT"} <= set(chart["series"])
            assert "stored" in chart["legend"]
            assert any(name.startswith(("held_1", "signup_vf"))
                       for name in chart["names"])
            assert chart["webhooks"] == "no webhook endpoints"
            assert chart["violations"] == [
                ["missing_required: user_signed_up", str(stored_missing + 1)],
                ["wrong_type: user_signed_up", "1"]]
            await page.do("screenshot", path=str(artifacts / "console-overview.png"),
                          full=True)

            report = await page.do("done")
    finally:
        await channel.close()

    # The one refused request is the wrong key's sign-in.
    assert report["failed"] == [{"url": f"{base_url}/console/api/overview", "status": 401}]
    # ... which the browser logs as an error of its own; the page itself logged none.
    assert report["errors"] == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    assert {urlsplit(url).netloc for url in report["requests"]} == {urlsplit(base_url).netloc}
    assert not [url for url in report["requests"] if reader in url]
    for name in ("console-live.png", "console-small.png", "console-phone.png",
                 "console-overview.png"):
        assert (artifacts / name).stat().st_size > 0
