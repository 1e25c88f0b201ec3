"""Logs of a real ``trackd serve`` process: JSON lines (``--log-format json``) or text,
one access line per HTTP request and per gRPC call with the same request id, and never a
key or a body, even at DEBUG.

The process runs on the test run's database (``--mongodb-uri``, its own ``--database``),
on free ports (tests/durability/harness.py's :class:`Trackd`); its stderr goes to a file
read while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymongo import MongoClient

from tests.durability.harness import Trackd, dev_key, until
from tests.server.helpers import event, track
from trackd.cli.logs import JsonFormatter, TextFormatter, resolve_format
from trackd.cli.settings import Settings, load
from trackd.v1 import tracking_pb2_grpc

HEX_ID = re.compile(r"[0-9a-f]{32}")
# The body carries this; it must never reach a log line.
BODY_MARKER = "body-marker-7f3e9c"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, mongodb_uri: str, *flags: str) -> AsyncIterator[Trackd]:
    """``trackd serve`` with ``flags`` on a database of its own, stopped by SIGTERM (so its
    last log lines are written) and that database dropped afterwards."""
    database = f"t_logs_{uuid.uuid4().hex[:12]}"
    serve = Trackd(tmp_path, mongodb_uri, flags=("--database", database, *flags))
    try:
        await serve.start()
        yield serve
        await serve.stop()
    finally:
        serve.close()
        client: MongoClient[dict[str, Any]]
        with MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000) as client:
            client.drop_database(database)


def post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"{url}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr, each of which must be one JSON object."""
    lines = []
    for line in stderr.splitlines():
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        assert {"time", "level", "logger", "message"} <= parsed.keys(), line
        lines.append(parsed)
    return lines


def wait_for(serve: Trackd, predicate: Any) -> list[dict[str, Any]]:
    """The JSON lines once one satisfies ``predicate`` (access lines follow the answer)."""
    deadline = time.monotonic() + 30
    while True:
        lines = json_lines(serve.stderr)
        if any(predicate(line) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_json_access_lines_of_both_halves_share_the_request_id_and_hold_no_secret(
    tmp_path: Path, mongodb_uri: str
) -> None:
    async with serving(tmp_path, mongodb_uri,
                       "--log-format", "json", "--log-level", "DEBUG") as serve:
        key = dev_key(serve.stdout)
        body = json.dumps({"external_user_id": "u-1", "name": "user_signed_up",
                           "properties": {"note": BODY_MARKER}}).encode()
        status, headers = post(serve.url, "/api/v1/events", body,
                               {"Authorization": f"Bearer {key}", "X-Request-Id": "rid-logs-1"})
        assert (status, headers["X-Request-Id"]) == (202, "rid-logs-1")
        # A hostile id is replaced, and the server logs the replacement.
        status, headers = post(serve.url, "/track",
                               json.dumps({"name": "a", "properties": {"n": BODY_MARKER}}).encode(),
                               {"x-api-key": key, "X-Request-Id": "evil id\t" + "x" * 200})
        assert status == 200
        made = headers["X-Request-Id"]
        assert HEX_ID.fullmatch(made), made
        # A wrong key that looks like a real one is not logged either.
        wrong_key = "trk_" + "W" * 43
        status, _ = post(serve.url, "/api/v1/events", body,
                         {"Authorization": f"Bearer {wrong_key}", "X-Request-Id": "rid-logs-2"})
        assert status == 401
        # A gRPC client of its own, with its own id.
        with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
            tracking_pb2_grpc.TrackingServiceStub(channel).TrackEvent(
                track(event(properties={"note": BODY_MARKER})), timeout=30,
                metadata=[("authorization", f"Bearer {key}"), ("x-request-id", "rid-grpc-9")])
        lines = wait_for(serve, lambda line: line.get("request_id") == "rid-grpc-9")

        access = [line for line in lines if line["logger"] == "trackd.access"]
        by_id: dict[tuple[str, str], dict[str, Any]] = {
            (line["request_id"], line["kind"]): line for line in access}
        http_line = by_id["rid-logs-1", "http"]
        assert http_line["latency_ms"] >= 0
        assert {k: v for k, v in http_line.items() if k not in ("time", "latency_ms")} == {
            "level": "INFO", "logger": "trackd.access", "message": "POST /api/v1/events 202",
            "kind": "http", "request_id": "rid-logs-1", "dialect": "vibefollow",
            "method": "POST", "route": "/api/v1/events", "status": 202, "events": 1,
            "bytes_in": len(body)}
        # The gateway carries single events in TrackEvents calls: each call's line lists
        # the requests it carried, under the REST request's id.
        carriers = {call["request_id"]: line for line in access
                    if line.get("method") == "TrackEvents" for call in line["calls"]}
        carried = {call["request_id"]: call for line in carriers.values()
                   for call in line["calls"]}
        # Every gRPC call a request made, carried or its own (Databuddy's /track is a
        # BatchTrack).
        calls = {**{line["request_id"]: line for line in access if line["kind"] == "grpc"
                    and line["method"] != "TrackEvents"}, **carried}
        carrier = carriers["rid-logs-1"]
        assert carrier["latency_ms"] >= 0
        assert carrier["bytes_in"] > 0
        assert HEX_ID.fullmatch(carrier["request_id"])
        assert {k: v for k, v in carrier.items()
                if k not in ("time", "latency_ms", "bytes_in", "request_id")} == {
            "level": "INFO", "logger": "trackd.access",
            "message": "trackd.v1.TrackingService/TrackEvents OK", "kind": "grpc",
            "service": "trackd.v1.TrackingService", "method": "TrackEvents", "code": "OK",
            "project": None, "source": "grpc", "events": 1,
            "calls": [{**carried["rid-logs-1"]}]}
        assert carried["rid-logs-1"]["latency_ms"] >= 0
        assert {k: v for k, v in carried["rid-logs-1"].items() if k != "latency_ms"} == {
            "request_id": "rid-logs-1", "code": "OK", "project": "default",
            "source": "vibefollow", "events": 1}
        assert (by_id[made, "http"]["route"], calls[made]["source"]) == (
            "/track", "databuddy")
        assert (by_id["rid-logs-2", "http"]["status"], calls["rid-logs-2"]["code"],
                calls["rid-logs-2"]["project"]) == (401, "UNAUTHENTICATED", None)
        assert (by_id["rid-grpc-9", "grpc"]["method"], by_id["rid-grpc-9", "grpc"]["source"],
                by_id["rid-grpc-9", "grpc"]["project"]) == ("TrackEvent", "grpc", "default")
        assert ("rid-grpc-9", "http") not in by_id
        # DEBUG is trackd's: the driver stays at WARNING.
        assert not [line for line in lines if line["logger"].startswith("pymongo")]

    stderr = serve.stderr
    for secret in (key, key[4:], wrong_key, wrong_key[4:], BODY_MARKER):
        assert secret not in stderr
    assert BODY_MARKER not in serve.stdout
    # The development key is printed once, on stdout, by design; nowhere else.
    assert serve.stdout.count(key) == 1


async def test_text_format_for_people(tmp_path: Path, mongodb_uri: str) -> None:
    async with serving(tmp_path, mongodb_uri, "--log-format", "text") as serve:
        key = dev_key(serve.stdout)
        body = b'{"external_user_id": "u-1", "name": "user_signed_up"}'
        status, _ = post(serve.url, "/api/v1/events", body,
                         {"Authorization": f"Bearer {key}", "X-Request-Id": "rid-text"})
        assert status == 202
        await until(lambda: "POST /api/v1/events 202" in serve.stderr, "the access line", 30)
    lines = [line for line in serve.stderr.splitlines() if line.strip()]
    assert all(TEXT_LINE.match(line) for line in lines), lines
    (http_line,) = [line for line in lines if "POST /api/v1/events 202" in line]
    assert "trackd.access: POST /api/v1/events 202 request_id=rid-text dialect=vibefollow " \
        "method=POST route=/api/v1/events status=202 latency_ms=" in http_line
    assert http_line.endswith(f" events=1 bytes_in={len(body)}")
    assert key not in serve.stderr


def test_log_format_is_a_setting_like_every_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKD_LOG_FORMAT", raising=False)
    assert Settings().log_format == "auto"
    monkeypatch.setenv("TRACKD_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    assert load({"log_format": "text"}).log_format == "text"  # the flag wins
    monkeypatch.setenv("TRACKD_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()
    monkeypatch.delenv("TRACKD_LOG_FORMAT")
    assert load({"log_level": "debug,pymongo=INFO"}).log_level == "debug,pymongo=INFO"
    for bad in ("LOUD", "DEBUG,pymongo", "DEBUG,=INFO"):
        with pytest.raises(ValueError, match="log_level"):
            load({"log_level": bad})


def test_auto_is_text_on_a_terminal_else_json(tmp_path: Path) -> None:
    with (tmp_path / "log").open("w") as file:
        assert resolve_format("auto", file) == "json"
    assert resolve_format("text", file) == "text"

    class Terminal:
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Terminal()) == "text"  # type: ignore[arg-type]


def test_json_time_is_utc_to_the_millisecond() -> None:
    record = logging.LogRecord("trackd", logging.INFO, __file__, 1, "m", (), None)
    formatter = JsonFormatter()
    for created, expected in ((0.0, "1970-01-01T00:00:00.000Z"),
                              (1796121448.5719, "2026-12-01T10:37:28.571Z"),
                              (1796121448.9999, "2026-12-01T10:37:28.999Z"),
                              (1796121449.0, "2026-12-01T10:37:29.000Z"),
                              (1796121448.001, "2026-12-01T10:37:28.001Z")):
        record.created = created
        assert json.loads(formatter.format(record))["time"] == expected, created


def test_formatters_put_fields_on_the_one_line() -> None:
    record = logging.LogRecord("trackd.access", logging.INFO, __file__, 1, "GET %s %d",
                               ("/metrics", 200), None)
    record.fields = {"kind": "http", "request_id": "r-1", "project": None, "events": 0}
    line = json.loads(JsonFormatter().format(record))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("time"))
    assert line == {"level": "INFO", "logger": "trackd.access", "message": "GET /metrics 200",
                    "kind": "http", "request_id": "r-1", "project": None, "events": 0}
    assert TextFormatter().format(record).endswith(
        " INFO trackd.access: GET /metrics 200 request_id=r-1 events=0")
    record.fields = {"kind": "grpc", "events": 1,
                     "calls": [{"request_id": "r-2", "code": "OK", "project": None}]}
    assert TextFormatter().format(record).endswith(
        ' events=1 calls=[{"request_id":"r-2","code":"OK","project":null}]')
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("server", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    (one_line,) = JsonFormatter().format(failed).splitlines()
    assert "RuntimeError: boom" in json.loads(one_line)["exception"]
