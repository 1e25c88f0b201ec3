"""A client that goes away while sending its body is not a server error.

On each route that reads a body, over a raw socket to the gateway as ``trackd serve``
runs it: the headers and half the body are sent, then the connection is reset (an RST,
SO_LINGER 0), either at once or once the handler is waiting for the rest. Afterwards the
access log has one INFO line with status 499 for each, no line has a traceback or is
above INFO, ``/metrics`` counts each as 499 and none as a 5xx, and nothing was stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import struct
import time
from urllib.parse import quote_from_bytes

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.hostile_harness import HOST, gateway_port, stored_counts
from trackd.storage import Store

__all__ = ["gateway_port"]  # fixture

# (method, path, route template, body, credential scheme)
BODY_ROUTES = [
    ("POST", "/api/v1/events", "/api/v1/events",
     {"external_user_id": "u1", "name": "x", "properties": {"pad": "y" * 500}}, "bearer"),
    ("POST", "/api/v1/events", "/api/v1/events",
     {"externalId": "c1", "eventKey": "x", "properties": {"pad": "y" * 500}}, "bearer"),
    ("POST", "/api/v1/events/batch", "/api/v1/events/batch",
     {"events": [{"external_user_id": "u1", "name": "x"}] * 20}, "bearer"),
    ("POST", "/api/v1/users", "/api/v1/users",
     {"external_user_id": "u1", "traits": {"pad": "y" * 500}}, "bearer"),
    ("POST", "/api/v1/users/bulk", "/api/v1/users/bulk",
     {"users": [{"external_user_id": "u1"}] * 20}, "bearer"),
    ("POST", "/v1/events", "/v1/events",
     {"event": {"event": "x", "user_id": "u1", "properties": {"pad": "y" * 500}}},
     "flywheel"),
    ("POST", "/api/v1/contacts", "/api/v1/contacts",
     {"externalId": "c1", "email": "a@b.co", "customAttributes": {"pad": "y" * 500}},
     "bearer"),
    ("PATCH", "/api/v1/contacts/c1", "/api/v1/contacts/{external_id}",
     {"customAttributes": {"pad": "y" * 500}}, "bearer"),
    ("POST", "/api/v1/audiences/evaluate", "/api/v1/audiences/evaluate",
     {"groups": [{"rules": [{"property": "plan", "op": "equals", "value": "y" * 500}]}]},
     "bearer"),
    ("POST", "/api/v1/contacts/c1/match", "/api/v1/contacts/{external_id}/match",
     {"groups": [{"rules": [{"property": "plan", "op": "equals", "value": "y" * 500}]}]},
     "bearer"),
    ("POST", "/track", "/track", {"name": "x", "properties": {"pad": "y" * 500}}, "bearer"),
    ("POST", "/identify", "/identify",
     {"profileId": "u1", "traits": {"pad": "y" * 500}}, "bearer"),
    # The SDK dialects: Segment's Basic write key in the header; PostHog's, Amplitude's
    # and Mixpanel's key in the body (half a body never reaches it); Mixpanel's forms.
    ("POST", "/v1/batch", "/v1/batch",
     {"batch": [{"type": "track", "userId": "u1", "event": "x"}] * 20}, "segment"),
    *(("POST", path, path, {"userId": "u1", "event": "x", "groupId": "g1",
                            "previousId": "a1", "properties": {"pad": "y" * 500}},
       "segment")
      for path in ("/v1/track", "/v1/page", "/v1/screen", "/v1/identify", "/v1/group",
                   "/v1/alias")),
    ("POST", "/batch/", "/batch/", {"api_key": "k", "batch": [
        {"event": "x", "distinct_id": "u1"}] * 20}, "none"),
    *(("POST", path, path, {"api_key": "k", "event": "x", "distinct_id": "u1",
                            "properties": {"pad": "y" * 500}}, "none")
      for path in ("/capture/", "/e/", "/i/v0/e/")),
    *(("POST", path, path, {"api_key": "k", "events": [
        {"event_type": "x", "user_id": "user-1"}] * 20}, "none")
      for path in ("/2/httpapi", "/batch")),
    *(("POST", path, path, [{"event": "x", "properties": {
        "token": "k", "distinct_id": "u1", "pad": "y" * 500}}], "form")
      for path in ("/track", "/import")),
    ("POST", "/engage", "/engage", [{"$token": "k", "$distinct_id": "u1",
                                     "$set": {"pad": "y" * 500}}], "form"),
]
DEADLINE = 30.0


def _reset_mid_body(port: int, head: bytes, half: bytes, wait: float) -> None:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(head + half)
    if wait:
        time.sleep(wait)  # let the handler start waiting for the rest (either order passes)
    # SO_LINGER on, 0 s: close() sends an RST, as a phone losing its network would not
    # even do; the harshest way to go away.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _request_head(method: str, path: str, length: int, scheme: str, key: str) -> bytes:
    basic = base64.b64encode(f"{key}:".encode()).decode()
    credential = {"flywheel": f"Authorization: {key}\r\nAuth-Type: api\r\n",
                  "segment": f"Authorization: Basic {basic}\r\n",
                  "none": "", "form": ""}.get(scheme, f"Authorization: Bearer {key}\r\n")
    content_type = "application/x-www-form-urlencoded" if scheme == "form" \
        else "application/json"
    return (f"{method} {path} HTTP/1.1\r\nHost: h\r\n{credential}"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()


def _body(body: object, scheme: str) -> bytes:
    """The bytes sent: JSON, or Mixpanel's form of it."""
    raw = orjson.dumps(body)
    return b"data=" + quote_from_bytes(raw).encode() if scheme == "form" else raw


async def _http_counts(port: int) -> dict[tuple[str, str, str], float]:
    """trackd_http_requests_total by (route, method, status)."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{HOST}:{port}/metrics") as response:
        text = await response.text()
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "trackd_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                key = (labels["route"], labels["method"], labels["status"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


@pytest.mark.parametrize("wait", [0.0, 0.3], ids=["at once", "while the handler waits"])
async def test_a_reset_mid_body_is_499_not_a_server_error(
        wait: float, gateway_port: int, key: str, store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="trackd.access")  # whatever a test before set
    counted = _Access499(len(BODY_ROUTES))
    logging.getLogger("trackd.access").addHandler(counted)
    try:
        await _send_and_check(wait, gateway_port, key, store, caplog, counted)
    finally:
        logging.getLogger("trackd.access").removeHandler(counted)


class _Access499(logging.Handler):
    """Collects the access lines with status 499; ``all`` is set once ``expected`` came."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.lines: list[logging.LogRecord] = []
        self.all = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "fields", {}).get("status") == 499:
            self.lines.append(record)
            if len(self.lines) >= self.expected:
                self.all.set()


async def _send_and_check(wait: float, gateway_port: int, key: str, store: Store,
                          caplog: pytest.LogCaptureFixture, counted: _Access499) -> None:
    before = await _http_counts(gateway_port)
    for method, path, _route, body, scheme in BODY_ROUTES:
        raw = _body(body, scheme)
        head = _request_head(method, path, len(raw), scheme, key)
        await asyncio.to_thread(_reset_mid_body, gateway_port, head, raw[:len(raw) // 2], wait)

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DEADLINE):
            await counted.all.wait()
    lines = counted.lines
    assert sorted((r.fields["method"], r.fields["route"]) for r in lines) == sorted(  # type: ignore[attr-defined]
        (method, route) for method, _, route, _, _ in BODY_ROUTES)
    assert all(r.levelno == logging.INFO for r in lines)
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno <= logging.INFO, record.getMessage()

    after = await _http_counts(gateway_port)
    delta = {labels: after[labels] - before.get(labels, 0) for labels in after
             if after[labels] != before.get(labels, 0) and labels[0] != "/metrics"}
    expected: dict[tuple[str, str, str], float] = {}
    for method, _, route, _, _ in BODY_ROUTES:
        expected[(route, method, "499")] = expected.get((route, method, "499"), 0) + 1
    assert delta == expected
    assert await stored_counts(store) == {"events": 0, "users": 0}
