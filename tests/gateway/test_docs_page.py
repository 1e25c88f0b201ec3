"""``GET /docs`` in a real headless Chromium (Debian's ``chromium``, driven by the pinned npm
``playwright-core``, ``docs_page.mjs``): the page loads with no failed request, every
request goes to the gateway itself (the page needs no internet), and it shows every
operation of the document.

Chromium is installed by ``.ci/run`` (and by ``scripts/test`` when run as root); without
it the test is skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from tests.processes import ROOT, run_for_json
from trackd.gateway.app import create_app
from trackd.gateway.openapi.document import build_document
from trackd.gateway.settings import GatewaySettings

SCRIPT = Path(__file__).with_name("docs_page.mjs")
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core" / "package.json"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium")
TIMEOUT_SECONDS = 180.0  # a bound for a stuck browser, never asserted on


def _missing() -> str:
    if NODE is None:
        return "node is not installed"
    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium; .ci/run installs it)"
    if not PLAYWRIGHT.exists():
        return "playwright-core is missing from node_modules: run scripts/test, or `npm ci`"
    return ""


async def open_docs(base_url: str, tmp_path: Path) -> dict[str, Any]:
    assert NODE is not None
    assert CHROMIUM is not None
    return await run_for_json([NODE, str(SCRIPT), base_url, str(tmp_path / "docs.png"),
                               CHROMIUM, str(tmp_path / "profile")], bound_seconds=TIMEOUT_SECONDS)


async def test_docs_page_renders_every_operation_with_no_failed_request(
        tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    # The page needs no gRPC server: nothing on it calls the API.
    app = create_app(GatewaySettings(grpc_target="127.0.0.1:1"))
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        base_url = str(server.make_url("")).rstrip("/")
        page = await open_docs(base_url, tmp_path)

    assert page["failed"] == []
    assert page["errors"] == []
    assert {urlsplit(url).netloc for url in page["requests"]} == {urlsplit(base_url).netloc}
    assert f"{base_url}/openapi.json" in page["requests"]
    assert page["title"].startswith(build_document()["info"]["title"])
    shown = {(operation["method"], operation["path"]) for operation in page["operations"]}
    assert shown == operations(build_document())
    assert (tmp_path / "docs.png").stat().st_size > 0


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation, with the document's parameter names."""
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method != "parameters"}
