"""A bounded, seeded fuzz run over every route of the gateway, as ``trackd serve`` runs it.

Hypothesis (derandomized: the same examples every run, :data:`EXAMPLES` of them, each
under :data:`DEADLINE_MS`) builds requests from each route's valid seed: the body valid,
mutated at the JSON level (a value replaced by arbitrary JSON, a key dropped), mutated at
the byte level, or random bytes; sent plain, gzip, deflate, as a bomb, truncated, or with
an encoding trackd does not decode; with the credential right, missing, or misspelt, and
random extra headers, paths and methods. Every answer must be:

- not a 5xx, unless a 503 with ``Retry-After``;
- JSON in the envelope of the dialect owning the path;
- when it refuses (4xx): with nothing stored;
- after every compressed body: followed by a good request answered within the client's
  timeout.

Rate limits are off here (they would answer 429 to most of the run). The connection-level
run (refusals on a kept-alive connection after another dialect's request, bodies cut by a
reset or a close) is tests/gateway/test_fuzz_connections.py.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.fuzz_routes import ROUTES, Route, envelope_for
from tests.gateway.hostile_harness import (
    exchange,
    good_event,
    gzip_bomb,
    request,
    serve_gateway,
    stored_counts,
)
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import ServerConfig, create_server
from trackd.storage import Store

EXAMPLES = 300
DEADLINE_MS = 5000
BOMB = gzip_bomb(1)
# Answers by status over the run, reported at the end of the module.
BY_STATUS: dict[int, int] = {}



json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30)


@st.composite
def bodies(draw: st.DrawFn, seed: Any) -> bytes:
    raw = orjson.dumps(seed) if seed is not None else b""
    kind = draw(st.sampled_from(["valid", "json", "bytes", "random", "deep"]))
    if kind == "json" and isinstance(seed, dict):
        mutated = dict(seed)
        name = draw(st.sampled_from(sorted(mutated)))
        if draw(st.booleans()):
            mutated[name] = draw(json_values)
        else:
            del mutated[name]
        return orjson.dumps(mutated)
    if kind == "bytes" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + draw(st.binary(max_size=8)) + raw[at + draw(st.integers(0, 8)):]
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "deep" and isinstance(seed, dict):
        depth = draw(st.integers(20, 60))
        value: Any = 1
        for _ in range(depth):
            value = [value] if draw(st.booleans()) else {"k": value}
        return orjson.dumps({**seed, "properties": value, "traits": value,
                             "customAttributes": value})
    return raw


ENCODINGS = ["", "", "", "gzip", "deflate", "bomb", "truncated", "garbage", "br", "zstd",
             "gzip, gzip"]


def encode(body: bytes, encoding: str) -> tuple[bytes, str]:
    if encoding == "gzip":
        return gzip.compress(body), "gzip"
    if encoding == "deflate":
        return zlib.compress(body), "deflate"
    if encoding == "bomb":
        return BOMB, "gzip"
    if encoding == "truncated":
        return gzip.compress(body)[:-9], "gzip"
    if encoding == "garbage":
        return body, "gzip"
    return body, encoding


header_names = st.sampled_from(["X-Fuzz", "Content-Type", "Idempotency-Key", "Origin",
                                "Accept", "Auth-Type", "x-api-key", "Expect"])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@dataclass(frozen=True)
class Fuzzed:
    route: Route
    method: str
    path: str
    body: bytes
    encoding: str
    credential: str
    extra: tuple[tuple[str, str], ...]

    def raw(self, key: str) -> bytes:
        body, encoding = encode(self.body, self.encoding)
        headers: dict[str, str] = {"Content-Type": "application/json"}
        credential = {
            "right": f"Bearer {key}", "missing": "", "lower": f"bearer {key}",
            "wrong": "Bearer trk_not_a_key", "spaces": f"Bearer  {key} ",
        }[self.credential]
        if self.route.auth == "flywheel" and self.credential == "right":
            headers["Auth-Type"] = "api"
            credential = key
        if self.route.auth == "mixpanel":
            # A form; the token in the JSON (the seed's empty ones become the credential).
            secret = {"right": key, "wrong": "trk_not_a_key"}.get(self.credential, "")
            data = self.body.replace(b'"token":""', f'"token":"{secret}"'.encode()) \
                .replace(b'"$token":""', f'"$token":"{secret}"'.encode())
            form = b"data=" + quote_from_bytes(data).encode() + b"&verbose=1"
            body, encoding = encode(form, self.encoding)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            credential = ""
        if self.route.auth == "posthog":  # PostHog's and Amplitude's
            # The key is in the body: the seed's empty api_key/token becomes the
            # credential (a mutated body may have lost it: then it has none).
            secret = {"right": key, "wrong": "trk_not_a_key"}.get(self.credential, "")
            body = self.body.replace(b'"api_key":""', f'"api_key":"{secret}"'.encode()) \
                .replace(b'"token":""', f'"token":"{secret}"'.encode())
            body, encoding = encode(body, self.encoding)
            credential = ""
        if self.route.auth == "segment" and self.credential in ("right", "wrong"):
            user = key if self.credential == "right" else "trk_not_a_key"
            credential = "Basic " + base64.b64encode(f"{user}:".encode()).decode()
        if credential:
            headers["Authorization"] = credential
        if encoding:
            headers["Content-Encoding"] = encoding
        for name, value in self.extra:
            headers[name] = value
        return request(self.method, self.path, body, headers=headers)


@st.composite
def fuzzed(draw: st.DrawFn) -> Fuzzed:
    route = draw(st.sampled_from(ROUTES))
    method = route.method if draw(st.integers(0, 9)) else draw(
        st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "PATCH", "POST"]))
    path = route.path
    if not draw(st.integers(0, 9)):
        path += draw(st.sampled_from(["/x", "/..", "%2e%2e", "/a/b/c", "?q=1"]))
    return Fuzzed(route, method, path, draw(bodies(route.seed)),
                  draw(st.sampled_from(ENCODINGS)),
                  draw(st.sampled_from(["right", "right", "right", "missing", "lower",
                                        "wrong", "spaces"])),
                  tuple(draw(st.lists(st.tuples(header_names, header_values), max_size=2))))




@pytest.fixture
async def port(store: Store, server_config: ServerConfig) -> AsyncIterator[int]:
    # Rate limits off: the fuzzer's hundreds of requests with one key must reach the rules.
    unlimited = dict.fromkeys(("cueflow", "databuddy", "vibefollow", "flywheel", "segment",
                               "posthog", "amplitude",
                               "mixpanel"))
    server = await create_server(store, dataclasses.replace(server_config,
                                                            rate_limits=unlimited))
    try:
        async with serve_gateway(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}")) \
                as port:
            yield port
    finally:
        await server.stop(grace=5)


@settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(case=fuzzed())
async def test_fuzz_every_route(case: Fuzzed, port: int, key: str, store: Store) -> None:
    before = await stored_counts(store)
    answers = await exchange(port, case.raw(key))
    assert answers, "no answer"
    answer = answers[0]
    BY_STATUS[answer.status] = BY_STATUS.get(answer.status, 0) + 1
    assert answer.status < 500 or (answer.status == 503 and "retry-after" in answer.headers)
    if answer.status == 204:
        assert answer.body == b""
        return
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    envelope = envelope_for(case.path) if answer.status >= 300 else case.route.envelope
    assert envelope(body, answer.status), body
    if answer.status >= 400:
        assert await stored_counts(store) == before
    if case.encoding:
        good = (await exchange(port, good_event(key)))[0]
        assert good.status == 202


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """What the run sent, by status (shown with pytest -s)."""
    yield
    print(f"\nfuzz: {sum(BY_STATUS.values())} requests, by status "
          f"{dict(sorted(BY_STATUS.items()))}")
