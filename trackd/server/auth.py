"""API keys: minting, hashing, and authenticating a call's ``authorization`` metadata.

A key is ``trk_`` followed by 43 URL-safe random characters; only its SHA-256 hash is
stored. A key belongs to one project (the tenant) and carries scopes. Lookups are cached
for ``cache_seconds`` so the hot path does not pay a database round trip per request; the
api_keys change stream (:meth:`Authenticator.follow`) drops a changed key from the cache as
the change commits, whichever process made it (``trackd keys revoke``), so a revoked key is
refused by every instance at once. Without change streams, the cache's time is the bound.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc

from trackd.server import metrics
from trackd.server.errors import PermissionDenied, Unauthenticated, Unavailable
from trackd.server.fleet_cache import FleetCache
from trackd.server.observability import note_project
from trackd.server.ratelimit import RateLimiter
from trackd.storage import StorageUnavailable
from trackd.storage.keys import ApiKeyRecord, ApiKeyRepository, KeyChanged, KeyFeedUnsupported
from trackd.v1 import errors_pb2

log = logging.getLogger(__name__)

KEY_PREFIX = "trk_"
SCOPE_TRACK_EVENTS = "track:events"
SCOPE_USERS_READ = "users:read"
SCOPE_USERS_WRITE = "users:write"
# Managing the project's tracking plan (TrackingPlanService): opt-in, never a default.
SCOPE_PLANS_MANAGE = "plans:manage"
# Opt-in powers, never among a new key's default scopes: managing webhook endpoints
# (where a project's events are sent), and reading the project's events back (Subscribe).
SCOPE_WEBHOOKS_MANAGE = "webhooks:manage"
SCOPE_EVENTS_READ = "events:read"
DEFAULT_SCOPES: tuple[str, ...] = (SCOPE_TRACK_EVENTS, SCOPE_USERS_READ, SCOPE_USERS_WRITE)
ALL_SCOPES: tuple[str, ...] = (*DEFAULT_SCOPES, SCOPE_PLANS_MANAGE, SCOPE_WEBHOOKS_MANAGE,
                               SCOPE_EVENTS_READ)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A newly minted key: the secret is shown once and never stored."""

    secret: str
    record: ApiKeyRecord


async def issue_key(
    keys: ApiKeyRepository, project_id: str, scopes: Sequence[str] = DEFAULT_SCOPES,
    websites: Sequence[str] = (),
) -> IssuedKey:
    """Mint a key; ``websites`` limits it to those websites' events (empty: any)."""
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    if not project_id:
        raise ValueError("a project name is required")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    record = await keys.insert(key_id, hash_key(secret), project_id, sorted(set(scopes)),
                               sorted(set(websites)))
    assert record is not None  # only development keys can lose a race
    return IssuedKey(secret, record)


async def issue_development_key(keys: ApiKeyRepository, project_id: str) -> IssuedKey | None:
    """A first key for ``project_id`` when it has no active key; None when it has one, or
    when another process (an instance starting at the same moment) just made it."""
    if await keys.project_has_active_key(project_id):
        return None
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = await keys.insert("key_" + secrets.token_hex(8), hash_key(secret), project_id,
                               sorted(DEFAULT_SCOPES), development=True)
    return None if record is None else IssuedKey(secret, record)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the project every read and write is confined to."""

    project_id: str
    key_id: str
    scopes: frozenset[str]
    # The websites the key is limited to; empty = any website of the project.
    websites: frozenset[str] = frozenset()


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class Authenticator(FleetCache[str, Principal | None, KeyChanged]):
    """API keys by hash, cached (revoked and unknown ones too) and dropped as they change."""

    def __init__(self, keys: ApiKeyRepository, cache_seconds: float = 5.0,
                 limiter: RateLimiter | None = None) -> None:
        super().__init__(cache_seconds, log=log, stream="api_keys",
                         unsupported=KeyFeedUnsupported, bound="a revoked key is refused")
        self._keys = keys
        self._limiter = limiter

    def _changes(self) -> AsyncIterator[KeyChanged | None]:
        return self._keys.changes()

    def _changed(self, change: KeyChanged | None) -> None:
        """Drop ``change``'s key's cached lookups (None: every one) and any lookup in
        flight."""
        self._generation += 1
        if change is None:
            self._cache.clear()
            return
        # Unknown hashes too: the change may be the key that made one valid.
        for key_hash, (_, principal) in list(self._cache.items()):
            if principal is None or principal.key_id == change.key_id:
                del self._cache[key_hash]

    def count(self, context: grpc.aio.ServicerContext[object, object], key_id: str,
              website_id: str = "") -> None:
        """Count an authenticated call against its rate limit (raises RateLimited)."""
        if self._limiter is not None:
            self._limiter.check(context, key_id, website_id)

    async def principal(self, key_hash: str) -> Principal | None:
        return await self._get(key_hash, lambda _stale: self._find(key_hash))

    async def _find(self, key_hash: str) -> Principal | None:
        try:
            record = await self._keys.find_by_hash(key_hash)
        except StorageUnavailable as exc:
            metrics.set_database_up(False)
            raise Unavailable("the database is unavailable; retry later") from exc
        if record is None or record.revoked:
            return None
        return Principal(record.project_id, record.key_id, frozenset(record.scopes),
                         frozenset(record.websites))

    async def authenticate(
        self, context: grpc.aio.ServicerContext[object, object], scope: str
    ) -> Principal:
        token = bearer_token(context.invocation_metadata())
        if token is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'",
                                  reason=errors_pb2.ERROR_REASON_API_KEY_MISSING)
        principal = await self.principal(hash_key(token))
        if principal is None:
            raise Unauthenticated("invalid or revoked API key",
                                  reason=errors_pb2.ERROR_REASON_API_KEY_INVALID)
        note_project(principal.project_id)
        self.count(context, principal.key_id)
        if scope not in principal.scopes:
            raise PermissionDenied(f"API key missing {scope} scope",
                                   reason=errors_pb2.ERROR_REASON_SCOPE_MISSING,
                                   metadata={"scope": scope})
        return principal
