"""``GET /`` (a page for a browser, today's JSON 404 for an API client) and the headers
every answer carries: ``Server: trackd`` and never aiohttp's ``Python/... aiohttp/...``,
including the answers given before the app runs; all over real HTTP to the gateway as
``trackd serve`` runs it (:class:`trackd.gateway.http_protocol.GatewayRunner`)."""

from __future__ import annotations

import pytest

from tests.gateway.hostile_harness import Answer, exchange, gateway_port, request
from trackd.gateway.front_door import PAGE_CSP, prefers_html

__all__ = ["gateway_port"]  # the fixture, imported for this module's tests

BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,*/*;q=0.8")
NOT_FOUND = {"error": {"code": "not_found", "message": "no such route"}}


def get(path: str, accept: str | None) -> bytes:
    headers = f"Accept: {accept}\r\n" if accept is not None else ""
    return f"GET {path} HTTP/1.1\r\nHost: h\r\n{headers}\r\n".encode()


def assert_neutral(answer: Answer) -> None:
    assert answer.headers["server"] == "trackd"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_a_browser_gets_a_page_leading_everywhere(gateway_port: int) -> None:
    (answer,) = await exchange(gateway_port, get("/", BROWSER_ACCEPT))
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"] == PAGE_CSP
    assert_neutral(answer)
    for link in ("/console", "/docs", "/openapi.json", "/metrics"):
        assert f'href="{link}"'.encode() in answer.body
    assert b"<script" not in answer.body


@pytest.mark.parametrize("accept", [None, "*/*", "application/json",
                                    "application/json, text/html;q=0.5"])
async def test_an_api_client_gets_todays_json_404(gateway_port: int, accept: str | None
                                                  ) -> None:
    (answer,) = await exchange(gateway_port, get("/", accept))
    assert (answer.status, answer.json()) == (404, NOT_FOUND)
    assert answer.headers["content-type"] == "application/json"
    assert_neutral(answer)


async def test_another_method_on_the_front_door_is_not_allowed(gateway_port: int) -> None:
    (answer,) = await exchange(gateway_port, request("POST", "/", b"{}"))
    assert (answer.status, answer.json()) == (405, {"error": {
        "code": "method_not_allowed", "message": "method POST not allowed; allowed: GET,HEAD"}})


@pytest.mark.parametrize("raw", [
    get("/healthz", None),  # a handler's answer
    get("/nothing", None),  # aiohttp's 404, in the envelope
    request("PUT", "/api/v1/events"),  # a 405
    b"GET /api/v1/events HTTP/1.1\r\nHost: h\r\nExpect: nothing\r\n\r\n",  # before the app
    b"FOO /api/v1/users HTTP/1.1\r\nHost: h\r\n\r\n",  # the HTTP parser's refusal
])
async def test_no_answer_names_the_servers_software(gateway_port: int, raw: bytes) -> None:
    (answer,) = await exchange(gateway_port, raw)
    assert_neutral(answer)
    assert "aiohttp" not in str(answer.headers).lower()
    assert "python" not in str(answer.headers).lower()


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER_ACCEPT, True), ("text/html", True), ("*/*", False), ("", False),
    ("application/json", False), ("text/html;q=0, */*", False),
    ("application/json;q=0.5, text/html", True), ("text/html;q=x", False),
])
def test_prefers_html(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html
