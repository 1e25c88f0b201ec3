"""Rate limits: a server rule for every protocol, per API key and scope, shared by instances.

A call is counted once its caller is authenticated, under its **scope** and **key**:

- the scope is the REST dialect the gateway names in ``trackd-dialect`` metadata (trusted
  only to choose the scope: a direct gRPC caller naming a dialect gets that dialect's
  limit) or ``grpc`` for every other call;
- the key is the API key's id (so every spelling of one credential counts to one key), or
  for a browser's website-id call ``website:<id>:<client address>`` (the gateway passes
  the client address as ``trackd-client-address``).

Each (scope, key) is a token bucket of ``requests`` tokens refilled over ``seconds``
(bursts up to ``requests``, then the steady rate). Every instance keeps its own copy of
each bucket it has used and admits against it without a database round trip; every
``sync_seconds`` (250 ms) it adds the requests it admitted to the shared counters
(:mod:`trackd.storage.ratelimits`) and takes the other instances' new requests out of its copy.
Between two syncs an instance spends at most its share of the bucket: what was left at
the last sync, less the others' requests it has not seen yet (reckoned as many as its
own over the last window), divided among the instances that used the key lately (while
the key is new to it: among the live instances, from the ``trackd_instances``
heartbeats), and at least one request per sync window. So with n instances the global
count exceeds the bucket and its refill by about n requests per sync window at most,
except that an instance that has not seen a key for a window starts with 1/n of a full
bucket for its first sync window, whatever the others spent; that excess is owed
afterwards (a bucket goes down to minus its size). docs/rate-limits.md: "Across instances".

A refused call is ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` and the ``ErrorInfo``
reason ``RATE_LIMITED``. Every counted call carries the IETF ``ratelimit-policy`` and
``ratelimit`` fields (draft-ietf-httpapi-ratelimit-headers) as trailing metadata, which
the gateway copies into HTTP headers.

What a limit is and how a call is told about it: :mod:`trackd.server.rate_limit_policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from trackd.server.errors import CALL_METADATA
from trackd.server.rate_limit_policy import (
    DEFAULT_LIMITS,
    GRPC_SCOPE,
    RateLimit,
    RateLimited,
    policy_field,
    state_fields,
)
from trackd.server.tasks import cancel_and_wait
from trackd.storage import StorageUnavailable
from trackd.storage.ratelimits import RateCounterRepository, others, sharers, slot_id
from trackd.wire.metadata import CLIENT_ADDRESS_METADATA, DIALECT_METADATA

log = logging.getLogger(__name__)

SYNC_SECONDS = 0.25
# An instance whose heartbeat is older than this no longer shares new keys' budgets.
LIVE_SECONDS = 3.0
HEARTBEAT_SECONDS = 1.0
MAX_KEYS = 100_000


@dataclass
class _Bucket:
    limit: RateLimit
    tokens: float
    updated: float
    # This instance's share until the next sync: ``share`` at ``share_since``, growing
    # by ``share_rate``, of which ``spent`` is used.
    share: float
    share_rate: float
    share_since: float
    last_used: float
    created: float
    spent: int = 0
    unsynced: int = 0
    synced: bool = False
    read_from_slot: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # slot doc -> others' count taken

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.limit.requests),
                          self.tokens + (now - self.updated) * self.limit.rate)
        self.updated = now

    def allowance(self, now: float) -> float:
        return self.share + (now - self.share_since) * self.share_rate - self.spent


def _metadata(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value.strip()
    return ""


class RateLimiter:
    def __init__(self, limits: Mapping[str, RateLimit | None],
                 counters: RateCounterRepository | None = None, *,
                 sync_seconds: float = SYNC_SECONDS, max_keys: int = MAX_KEYS) -> None:
        self._limits = {**DEFAULT_LIMITS, **limits}
        self._policies = {scope: policy_field(scope, limit)
                          for scope, limit in self._limits.items() if limit is not None}
        self._counters = counters
        self._sync_seconds = sync_seconds
        self._max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._owner = uuid.uuid4().hex
        self._live = 1
        self._heartbeat_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return any(limit is not None for limit in self._limits.values())

    def limit(self, scope: str) -> RateLimit | None:
        return self._limits.get(scope)

    # Admission: the hot path, no I/O.

    def check(self, context: grpc.aio.ServicerContext[Any, Any], key_id: str,
              website_id: str = "") -> None:
        """Count the call of an authenticated caller; raise :class:`RateLimited`."""
        scope = _metadata(context, DIALECT_METADATA) or GRPC_SCOPE
        if scope not in self._limits:
            scope = GRPC_SCOPE
        if self._limits[scope] is None:
            return
        if key_id:
            key = key_id
        else:
            address = _metadata(context, CLIENT_ADDRESS_METADATA) or context.peer()
            key = f"website:{website_id}:{address}"
        fields = self.admit(scope, key)
        with contextlib.suppress(Exception):  # a context that cannot carry it: no headers
            context.set_trailing_metadata(fields)

    def admit(self, scope: str, key: str) -> tuple[tuple[str, str], ...]:
        """Take one request of (scope, key); the rate-limit fields to send with the answer.

        Raises :class:`RateLimited` (carrying the fields in :data:`CALL_METADATA`)."""
        limit = self._limits.get(scope)
        if limit is None:
            return ()
        now = time.monotonic()
        bucket = self._buckets.get((scope, key))
        if bucket is None:
            share = limit.requests / self._live
            bucket = _Bucket(limit, float(limit.requests), now, share,
                             limit.rate / self._live, now, now, now)
            self._buckets[(scope, key)] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((scope, key))
            bucket.refill(now)
        if bucket.tokens >= 1.0 and (bucket.allowance(now) >= 1.0 or bucket.spent == 0):
            bucket.tokens -= 1.0
            bucket.last_used = now
            bucket.spent += 1
            bucket.unsynced += 1
            full = math.ceil((limit.requests - bucket.tokens) / limit.rate)
            fields = state_fields(self._policies[scope], scope, max(0, math.floor(bucket.tokens)),
                             full)
            CALL_METADATA.set(fields)
            return fields
        # Out of tokens: until one is back; else this instance's share is spent, and the
        # next sync shares out what is left again.
        wait = max(1, math.ceil((1.0 - bucket.tokens) / limit.rate)) \
            if bucket.tokens < 1.0 else 1
        fields = state_fields(self._policies[scope], scope, 0, wait)
        CALL_METADATA.set(fields)
        raise RateLimited(limit, wait)

    # Sharing through the database.

    def start(self) -> None:
        if self._counters is not None and self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            with contextlib.suppress(Exception):
                await self.sync()  # what was admitted since the last sync still counts
            if self._counters is not None:
                with contextlib.suppress(StorageUnavailable):
                    await self._counters.leave(self._owner)

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except StorageUnavailable as exc:
                log.debug("rate limit counters not synchronised: %s", exc)
            except Exception:
                log.exception("rate limit counters not synchronised")
            await asyncio.sleep(self._sync_seconds)

    async def sync(self) -> None:
        """Publish this instance's new counts, and take in the others'."""
        counters = self._counters
        if counters is None:
            return
        wall = time.time()
        now = time.monotonic()
        if now >= self._heartbeat_at:
            self._live = max(1, await counters.heartbeat(
                self._owner, datetime.now(UTC), timedelta(seconds=LIVE_SECONDS)))
            self._heartbeat_at = now + HEARTBEAT_SECONDS
        self._evict(now)
        buckets = list(self._buckets.items())
        increments: dict[str, tuple[int, datetime]] = {}
        taken: list[tuple[_Bucket, int]] = []
        wanted: dict[tuple[str, str], list[str]] = {}
        for (scope, key), bucket in buckets:
            limit = bucket.limit
            slot = math.floor(wall / limit.slot_seconds)
            if bucket.unsynced:
                expires = datetime.fromtimestamp(
                    (slot + 2) * limit.slot_seconds + limit.seconds, UTC)
                increments[slot_id(scope, key, slot)] = (bucket.unsynced, expires)
                taken.append((bucket, bucket.unsynced))
                bucket.unsynced = 0
            if bucket.synced and self._live == 1:
                # Alone: there are no others' counts to take in (the heartbeat says when
                # another instance starts, within a second, before it has used a key
                # long), so only the publication costs the database anything.
                wanted[(scope, key)] = []
                continue
            first = bucket.read_from_slot - 1 if bucket.synced else \
                math.floor((wall - limit.seconds) / limit.slot_seconds)
            wanted[(scope, key)] = [slot_id(scope, key, s) for s in range(first, slot + 1)]
        try:
            await counters.publish(self._owner, increments)
        except StorageUnavailable:
            for bucket, count in taken:
                bucket.unsynced += count  # published at the next sync instead
            raise
        docs = await counters.read(doc_id for ids in wanted.values() for doc_id in ids)
        now = time.monotonic()
        for (scope, key), bucket in buckets:
            ids = wanted[(scope, key)]
            limit = bucket.limit
            bucket.refill(now)
            found = {doc_id: docs[doc_id] for doc_id in ids if doc_id in docs}
            if not bucket.synced:
                # What any bucket holds is at most its size less everything admitted
                # within a window: this instance's requests included, those published and
                # those admitted since.
                total = sum(sum(counts.values()) for counts in found.values())
                bucket.tokens = min(bucket.tokens,
                                    float(limit.requests - total - bucket.unsynced))
                bucket.seen = {doc_id: others(counts, self._owner)
                               for doc_id, counts in found.items()}
                bucket.synced = True
            else:
                for doc_id, counts in found.items():
                    theirs = others(counts, self._owner)
                    bucket.tokens -= max(0, theirs - bucket.seen.get(doc_id, 0))
                    bucket.seen[doc_id] = theirs
                bucket.seen = {doc_id: n for doc_id, n in bucket.seen.items() if doc_id in ids}
            bucket.tokens = max(bucket.tokens, -float(limit.requests))
            # Shared among the instances that used the key lately; while the bucket is
            # young, among all live ones (another may have used it without publishing yet).
            recent = [found[doc_id] for doc_id in ids[-2:] if doc_id in found]
            n = sharers(recent, self._owner)
            if now - bucket.created < LIVE_SECONDS:
                n = max(n, self._live)
            # The others' requests since their last publication are not in the tokens yet:
            # reckoned as many as this instance admitted since its last sync (the load
            # balancer spreads the key evenly). The tokens already count every request
            # admitted here, so the share starts afresh.
            unpublished = (n - 1) * bucket.spent
            bucket.share = max(bucket.tokens - unpublished, 0.0) / n
            bucket.share_rate = limit.rate / n
            bucket.share_since = now
            bucket.spent = 0
            bucket.read_from_slot = math.floor(wall / limit.slot_seconds)

    def _evict(self, now: float) -> None:
        """Forget buckets idle long enough to be full again, with nothing to publish."""
        for item, bucket in list(self._buckets.items()):
            idle = now - bucket.last_used
            bucket.refill(now)
            if bucket.unsynced == 0 and idle > bucket.limit.seconds + bucket.limit.slot_seconds \
                    and bucket.tokens >= bucket.limit.requests:
                del self._buckets[item]

    def keys(self) -> int:
        """How many (scope, key) buckets this instance holds."""
        return len(self._buckets)


