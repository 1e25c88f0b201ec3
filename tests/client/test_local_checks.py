"""What ``track()`` and ``identify()`` refuse before queueing: every rule the server would
enforce on the whole batch, raised to the caller with the field's name; nothing queued.

No server is needed: the client points at a port where nothing listens and never sends
(``flush_interval`` is long and nothing valid is queued).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from trackd_client import Client, ClientClosed, limits


@pytest.fixture
def client() -> Iterator[Client]:
    client = Client("127.0.0.1:1", "trk_unused", flush_interval=60)
    yield client
    assert client.stats().queued == 0  # nothing refused was queued
    client.close(timeout=0)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"name": ""}, ValueError, "name: must not be empty"),
    ({"name": 7}, TypeError, "name: must be a str, not int"),
    ({"name": "x" * (limits.MAX_NAME_CHARS + 1)}, ValueError, "name: must be at most 512"),
    ({"user_id": None}, ValueError, "user_id: is required when anonymous_id is not given"),
    ({"user_id": "u" * 257}, ValueError, "user_id: must be at most 256 characters"),
    ({"user_id": None, "anonymous_id": "a" * 257}, ValueError, "anonymous_id: must be at most"),
    ({"event_id": ""}, ValueError, "event_id: must not be empty"),
    ({"properties": {f"k{i}": i for i in range(101)}}, ValueError,
     "properties: at most 100 keys are allowed, got 101"),
    ({"properties": {"tags": {"a", "b"}}}, TypeError, "properties.tags: set cannot be sent"),
    ({"properties": {"raw": b"\x00"}}, TypeError, "properties.raw: bytes cannot be sent"),
    ({"properties": {"list": [1, object()]}}, TypeError,
     "properties.list[1]: object cannot be sent"),
    ({"properties": {"when": datetime.now(UTC)}}, TypeError,
     "properties.when: datetime cannot be sent"),
    ({"properties": {"x": float("nan")}}, ValueError, "properties.x: numbers must be finite"),
    ({"properties": {"big": 2**60}}, ValueError, "properties.big: integers must be within"),
    ({"properties": {"$set": 1}}, ValueError, "properties.$set: keys must be non-empty"),
    ({"properties": {1: "one"}}, TypeError, "properties: keys must be str, not int"),
    ({"properties": {"deep": nested(32)}}, ValueError,
     "may nest at most 32 levels deep"),
    ({"properties": {"blob": "x" * limits.MAX_PROPERTIES_BYTES}}, ValueError,
     "properties: must be at most 1048576 bytes as JSON"),
    ({"properties": ["not", "a", "dict"]}, TypeError, "properties: must be a dict, not list"),
    ({"timestamp": datetime(2024, 1, 1)}, ValueError, "timestamp: must be timezone-aware"),
    ({"timestamp": "2024-01-01"}, TypeError, "timestamp: must be a datetime, not str"),
])
def test_track_refuses_what_the_server_would(
    client: Client, kwargs: dict[str, Any], error: type[Exception], message: str,
) -> None:
    arguments: dict[str, Any] = {"name": "signed_up", "user_id": "usr_1", **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        client.track(**arguments)


def test_what_fits_is_queued_with_its_id() -> None:
    client = Client("127.0.0.1:1", "trk_unused", flush_interval=60)
    try:
        assert client.track("signed_up", anonymous_id="anon_1",
                            properties={"deep": nested(31), "n": 2**53, "ok": [None, True]},
                            event_id="evt-1") == "evt-1"
        generated = client.track("signed_up", user_id="usr_1")
        assert re.fullmatch(r"[0-9a-f-]{36}", generated)
        assert client.stats().queued == client.stats().pending == 2
    finally:
        client.close(timeout=0)
    assert client.stats().failed == 2  # never sent: the close had no time
    with pytest.raises(ClientClosed):
        client.track("signed_up", user_id="usr_1")


@pytest.mark.parametrize(("args", "error", "message"), [
    (("",), ValueError, "user_id: must not be empty"),
    (("u1", {"a.b": 1}), ValueError, "traits.a.b: keys must be non-empty and contain no '.'"),
    (("u1", {f"k{i}": i for i in range(101)}), ValueError,
     "traits: at most 100 keys are allowed"),
    (("u1", {"seen": {1, 2}}), TypeError, "traits.seen: set cannot be sent"),
    (("u1", None, "anon"), TypeError, "anonymous_ids: must be a list of str"),
])
def test_identify_refuses_what_the_server_would(
    client: Client, args: tuple[Any, ...], error: type[Exception], message: str,
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        client.identify(*args)
