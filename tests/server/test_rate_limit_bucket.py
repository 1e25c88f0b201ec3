"""The rate limiter's arithmetic on its own: parsing a limit, the token bucket of one
(scope, key) on one instance, and the IETF ``ratelimit`` fields and Retry-After it
answers with (what each gRPC call and REST answer carries: tests/server/test_rate_limits.py
and the dialects' tests hold them end to end).

The limiter reads the clock through its module's ``time``; a clock the test moves by hand
stands in for it, so every remaining count, reset and retry delay is exact. The limits
chosen have rates that are exact binary fractions (2 per 8 s: a token every 4 s), so no
rounding hides in the expected numbers. No counters repository: one instance alone.
"""

from __future__ import annotations

import contextvars
import math
from fractions import Fraction

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from trackd.server import ratelimit
from trackd.server.rate_limit_policy import RateLimit, RateLimited, limits_from
from trackd.server.rate_limit_policy import policy_field as _policy
from trackd.server.ratelimit import RateLimiter

TWO_PER_8 = RateLimit(2, 8)  # a token back every 4 s
POLICY = ("ratelimit-policy", '"cueflow";q=2;w=8')


class Clock:
    """``time.monotonic`` and ``time.time`` of a world where time moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


def admit(limiter: RateLimiter, scope: str, key: str) -> tuple[tuple[str, str], ...]:
    """``limiter.admit``, in a context of its own: it leaves the fields it answers with in
    a context variable (for the call's trailers), which must not leak into later tests."""
    return contextvars.copy_context().run(limiter.admit, scope, key)


def state(remaining: int, reset: int) -> tuple[tuple[str, str], tuple[str, str]]:
    return (POLICY, ("ratelimit", f'"cueflow";r={remaining};t={reset}'))


def refused(limiter: RateLimiter, scope: str = "cueflow", key: str = "key_1") -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        admit(limiter, scope, key)
    return caught.value


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "limit"), [
    ("100/60", RateLimit(100, 60.0)),
    (" 5 / 1.5 s ", RateLimit(5, 1.5)),
    ("1/1s", RateLimit(1, 1.0)),
    ("", None),
    ("0", None),
    ("off", None),
    ("OFF", None),
    (" none ", None),
])
def test_a_limit_is_requests_per_seconds_or_off(spec: str, limit: RateLimit | None) -> None:
    assert RateLimit.parse(spec) == limit


@pytest.mark.parametrize("spec", ["lots", "0/60", "5/0", "-1/60", "5/", "/60", "5/60m",
                                  "1.5/60"])
def test_anything_else_is_refused_naming_the_form(spec: str) -> None:
    with pytest.raises(ValueError, match="REQUESTS/SECONDS") as caught:
        RateLimit.parse(spec)
    assert str(caught.value) == f"rate limit {spec!r} is not of the form REQUESTS/SECONDS"


# Windows of up to 99,999 s: ``%g`` writes 10**6 as 1e+06 (in the description and in the
# ratelimit-policy field's w=, which the IETF draft makes an integer).
@given(requests=st.integers(1, 10**6), seconds=st.integers(1, 99_999))
def test_parse_reads_back_what_it_describes(requests: int, seconds: int) -> None:
    limit = RateLimit.parse(f"{requests}/{seconds}")
    assert limit == RateLimit(requests, float(seconds))
    assert str(limit) == f"{requests} requests per {seconds} s"


def test_rate_window_slots_and_description() -> None:
    assert RateLimit(100, 60).rate == pytest.approx(100 / 60)
    assert RateLimit(100, 60).slot_seconds == 3.0  # a twentieth of the window...
    assert RateLimit(5, 10).slot_seconds == 1.0  # ...but at least a second
    assert str(RateLimit(2, 0.5)) == "2 requests per 0.5 s"
    assert str(RateLimit(600, 60)) == "600 requests per 60 s"


def test_settings_override_only_the_scopes_they_name() -> None:
    assert limits_from([("cueflow", "5/60"), ("flywheel", None), ("databuddy", "off")]) == {
        "cueflow": RateLimit(5, 60), "databuddy": None}


# --- the bucket ------------------------------------------------------------------------------


def test_a_burst_takes_the_bucket_then_waits_for_the_next_token(clock: Clock) -> None:
    limiter = RateLimiter({"cueflow": TWO_PER_8})
    # Remaining after this request, and seconds until the bucket is full again.
    assert admit(limiter, "cueflow", "key_1") == state(1, 4)
    assert admit(limiter, "cueflow", "key_1") == state(0, 8)

    error = refused(limiter)
    assert error.retry_after_seconds == 4  # one token comes back in 4 s
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(error) == "rate limit exceeded: 2 requests per 8 s per key; retry in 4 s"
    retry = error.details()[0]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (4, 0)

    clock.advance(1)  # a quarter of a token back: 3 s to go
    assert refused(limiter).retry_after_seconds == 3
    clock.advance(2.5)  # seven eighths: the half second left is rounded up
    assert refused(limiter).retry_after_seconds == 1
    clock.advance(0.5)
    assert admit(limiter, "cueflow", "key_1") == state(0, 8)
    assert refused(limiter).retry_after_seconds == 4


def test_an_idle_key_refills_to_the_bucket_size_and_no_further(clock: Clock) -> None:
    limiter = RateLimiter({"cueflow": TWO_PER_8})
    admit(limiter, "cueflow", "key_1")
    admit(limiter, "cueflow", "key_1")
    clock.advance(3_600)
    assert admit(limiter, "cueflow", "key_1") == state(1, 4)
    assert admit(limiter, "cueflow", "key_1") == state(0, 8)
    refused(limiter)


def test_keys_and_scopes_have_buckets_of_their_own(clock: Clock) -> None:
    limiter = RateLimiter({"cueflow": TWO_PER_8, "databuddy": RateLimit(1, 4)})
    admit(limiter, "cueflow", "key_1")
    admit(limiter, "cueflow", "key_1")
    refused(limiter, "cueflow", "key_1")
    assert admit(limiter, "cueflow", "key_2") == state(1, 4)
    assert admit(limiter, "databuddy", "key_1") == (
        ("ratelimit-policy", '"databuddy";q=1;w=4'), ("ratelimit", '"databuddy";r=0;t=4'))
    assert refused(limiter, "databuddy", "key_1").retry_after_seconds == 4
    assert limiter.keys() == 3


def test_a_scope_without_a_limit_counts_nothing(clock: Clock) -> None:
    limiter = RateLimiter({"cueflow": TWO_PER_8, "grpc": None})
    for _ in range(10):
        assert admit(limiter, "grpc", "key_1") == ()
    assert limiter.limit("grpc") is None
    assert limiter.limit("cueflow") == TWO_PER_8
    assert limiter.keys() == 0


def test_every_limit_off_disables_the_limiter() -> None:
    scopes = ("vibefollow", "flywheel", "databuddy", "cueflow", "grpc")
    assert not RateLimiter(dict.fromkeys(scopes)).enabled
    assert RateLimiter({**dict.fromkeys(scopes), "grpc": RateLimit(1, 1)}).enabled


def test_past_max_keys_the_least_recently_used_bucket_is_forgotten(clock: Clock) -> None:
    limiter = RateLimiter({"cueflow": TWO_PER_8}, max_keys=2)
    admit(limiter, "cueflow", "a")
    admit(limiter, "cueflow", "a")
    refused(limiter, "cueflow", "a")
    admit(limiter, "cueflow", "b")
    admit(limiter, "cueflow", "c")  # a, used longest ago, goes
    assert limiter.keys() == 2
    assert admit(limiter, "cueflow", "a") == state(1, 4)  # a full bucket again


@given(requests=st.integers(1, 50), exponent=st.integers(0, 6), extra=st.integers(0, 20))
def test_a_burst_admits_exactly_the_bucket_size(requests: int, exponent: int,
                                               extra: int) -> None:
    seconds = 2**exponent  # the rate, requests / seconds, is then exact
    limiter = RateLimiter({"cueflow": RateLimit(requests, seconds)})
    admitted, delays = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ratelimit, "time", Clock())
        for _ in range(requests + extra):
            try:
                admitted.append(admit(limiter, "cueflow", "key_1")[1][1])
            except RateLimited as error:
                delays.append(error.retry_after_seconds)
    # Remaining counts down to 0; the reset is the time the spent tokens take to come back.
    assert admitted == [
        f'"cueflow";r={requests - n};t={math.ceil(Fraction(n * seconds, requests))}'
        for n in range(1, requests + 1)]
    # Refused: until one token is back, at least a second.
    assert delays == [max(1, math.ceil(Fraction(seconds, requests)))] * extra


@pytest.mark.parametrize(("limit", "window"), [
    (RateLimit(100, 60), "w=60"), (RateLimit(5, 1_000_000), "w=1000000"),
    (RateLimit(5, 0.5), "w=1")])
def test_the_policy_header_window_is_whole_seconds(limit: RateLimit, window: str) -> None:
    assert _policy("cueflow", limit) == (
        "ratelimit-policy", f'"cueflow";q={limit.requests};{window}')
