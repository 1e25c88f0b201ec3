"""The official Databuddy SDK (npm ``@databuddy/sdk`` 2.6.0, ``@databuddy/sdk/node``)
pointed at trackd with ``apiUrl``: track, flush, batch and identify work unchanged.

The SDK runs in a real Node process (``databuddy_sdk.mjs``) against a real gateway and
gRPC server; the test then checks what the database holds.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events
from tests.processes import ROOT, run_for_json
from trackd.storage import Store

SCRIPT = Path(__file__).with_name("databuddy_sdk.mjs")
SDK = ROOT / "node_modules" / "@databuddy" / "sdk" / "package.json"
NODE = shutil.which("node")
TIMEOUT_SECONDS = 120.0  # a bound for a stuck process, never asserted on

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


async def run_sdk(api_url: str, key: str, website_id: str) -> dict[str, Any]:
    assert NODE is not None
    if not SDK.exists():
        pytest.fail("@databuddy/sdk is missing from node_modules: scripts/test installs "
                    "the pinned node tools (or run `npm ci`)")
    return await run_for_json([NODE, str(SCRIPT), api_url, key, website_id],
                              bound_seconds=TIMEOUT_SECONDS)


async def test_official_sdk_against_trackd(
    http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    website_id = str(uuid.uuid4())
    await store.websites.insert(website_id, "acme", ["https://app.example.com"])
    api_url = str(http.make_url("")).rstrip("/")

    results = await run_sdk(api_url, api_key, website_id)

    assert results == {
        "track": {"success": True},
        "trackRepeated": {"success": True},
        "queued0": {"success": True},
        "queued1": {"success": True},
        "queued2": {"success": True},
        "flush": {"success": True, "processed": 3},
        "batch": {"success": True, "processed": 2},
        "identify": {"success": True},
        "trackAfterIdentify": {"success": True},
        "invalid": {"success": False, "error": "HTTP 400: Bad Request"},
    }
    docs = await stored_events(store)
    summary = sorted((d["name"], d["user_id"], d["anonymous_id"], d["website_id"],
                      d.get("namespace"), d.get("source")) for d in docs)
    assert summary == [
        ("checkout", "user-sdk", "anon-sdk", website_id, "sdk", "node"),
        ("page_viewed", "user-sdk", "anon-sdk", website_id, None, None),
        ("page_viewed", "user-sdk", "anon-sdk", website_id, None, None),
        ("page_viewed", "user-sdk", "anon-sdk", website_id, None, None),
        ("report_exported", "user-sdk", None, website_id, "sdk", "node"),
        ("report_shared", None, "anon-other", website_id, "sdk", "node"),
        ("signup_started", "user-sdk", "anon-sdk", website_id, "sdk", "node"),
    ]
    by_name = {d["name"]: d for d in docs}
    assert by_name["signup_started"]["properties"] == {"plan": "pro", "seats": 3}
    assert by_name["signup_started"]["session_id"] == "sess-sdk"
    assert sorted(d["properties"]["page"] for d in docs if d["name"] == "page_viewed") \
        == [0, 1, 2]
    assert all(d["properties"]["app"] == "trackd-test"
               for d in docs if d["name"] == "page_viewed")
    assert by_name["report_exported"]["timestamp"].timestamp() == 1_700_000_000
    user = await store.users.get("acme", external_id="user-sdk")
    assert user is not None
    assert user["traits"] == {"plan": "pro", "company": "Acme"}
    assert user["anonymous_ids"] == ["anon-sdk"]
