"""Websites: browser tracking by website id, allowed origins, and keys limited to websites.

Who may write events, beyond :mod:`trackd.server.auth`'s API keys:

- A call with ``authorization: Bearer <key>`` is the key's (scope ``track:events``). An
  event naming a website of another project is refused (``WEBSITE_SCOPE_MISMATCH``); a
  key limited to websites writes only events naming one of them (``WEBSITE_NOT_ALLOWED``).
  A website id that names no website is, for an unlimited key, a free-form label.
- A call with no key but ``trackd-website-id: <uuid>`` metadata is a browser's: the
  website must exist (``WEBSITE_NOT_FOUND``) and ``trackd-origin`` (the page's
  ``Origin``) must be one of its origins (``ORIGIN_NOT_AUTHORIZED``); without an origin
  the website must allow server-side tracking. Its events belong to the website's
  project and may name only that website; those naming none get it.
- With neither, the call is unauthenticated (``API_KEY_MISSING``).

Lookups are cached for ``cache_seconds``, like keys, so browser traffic does not cost a
database round trip per request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc

from trackd.server.auth import SCOPE_TRACK_EVENTS, Authenticator, Principal
from trackd.server.errors import InvalidArgument, NotFound, PermissionDenied, storage_call
from trackd.server.observability import note_project
from trackd.server.validation import CONTEXT_LIMITS
from trackd.storage.websites import WebsiteRecord, WebsiteRepository
from trackd.v1 import errors_pb2

WEBSITE_ID_METADATA = "trackd-website-id"
ORIGIN_METADATA = "trackd-origin"

WEBSITE_NOT_FOUND = errors_pb2.ERROR_REASON_WEBSITE_NOT_FOUND
ORIGIN_NOT_AUTHORIZED = errors_pb2.ERROR_REASON_ORIGIN_NOT_AUTHORIZED
WEBSITE_SCOPE_MISMATCH = errors_pb2.ERROR_REASON_WEBSITE_SCOPE_MISMATCH
WEBSITE_NOT_ALLOWED = errors_pb2.ERROR_REASON_WEBSITE_NOT_ALLOWED

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CACHE_MAX_ENTRIES = 10_000


def canonical_origin(origin: str) -> str:
    """``scheme://host[:port]``, lower-case, without a default port or trailing slash.

    Raises ValueError for anything that is not an http(s) origin.
    """
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin such as https://example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} is not an origin: it has more than scheme, host, port")
    port = parts.port  # raises ValueError for a malformed port
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _metadata(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value.strip()
    return ""


def _not_found(website_id: str) -> NotFound:
    return NotFound(f"no website with id {website_id!r}", reason=WEBSITE_NOT_FOUND,
                    metadata={"website_id": website_id})


@dataclass(frozen=True)
class Writer:
    """Who writes events: the principal, and the website tracking by id (if any)."""

    principal: Principal
    # The website named by the call's metadata: with a key, the default website of
    # events naming none; without, the website that authenticated the call.
    website_id: str = ""
    by_website: bool = False


class WebsiteGuard:
    def __init__(self, auth: Authenticator, websites: WebsiteRepository,
                 cache_seconds: float = 5.0) -> None:
        self._auth = auth
        self._websites = websites
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, WebsiteRecord | None]] = {}

    async def websites(self, website_ids: Sequence[str]) -> dict[str, WebsiteRecord]:
        """The existing websites among ``website_ids``, through the cache."""
        now = time.monotonic()
        found: dict[str, WebsiteRecord] = {}
        missing: list[str] = []
        for website_id in dict.fromkeys(website_ids):
            cached = self._cache.get(website_id)
            if cached is not None and cached[0] > now:
                if cached[1] is not None:
                    found[website_id] = cached[1]
            else:
                missing.append(website_id)
        if missing:
            fetched = await storage_call(self._websites.get_many(missing))
            found.update(fetched)
            if self._cache_seconds > 0:
                if len(self._cache) + len(missing) > _CACHE_MAX_ENTRIES:
                    self._cache.clear()
                for website_id in missing:
                    self._cache[website_id] = (now + self._cache_seconds,
                                               fetched.get(website_id))
        return found

    async def check_origin(self, website_id: str, origin: str) -> tuple[WebsiteRecord, str]:
        """The website, and the canonical origin, when ``origin`` may track for it."""
        website = (await self.websites([website_id])).get(website_id) if website_id else None
        if website is None:
            raise _not_found(website_id)
        if not origin:
            if not website.allow_server_side:
                raise PermissionDenied(
                    "this website accepts events only from browsers on its origins "
                    "(the request has no Origin)", reason=ORIGIN_NOT_AUTHORIZED)
            return website, ""
        try:
            canonical = canonical_origin(origin)
        except ValueError:
            canonical = ""
        if not canonical or canonical not in website.origins:
            raise PermissionDenied(f"origin {origin!r} is not one of the website's origins",
                                   reason=ORIGIN_NOT_AUTHORIZED, metadata={"origin": origin})
        return website, canonical

    async def writer(self, context: grpc.aio.ServicerContext[Any, Any]) -> Writer:
        """Authenticate a tracking call: by API key, else by website id."""
        # One pass over the call's metadata for both questions (this runs for every call).
        website_id: str | None = None
        has_key = False
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                has_key = True
            elif website_id is None and key == WEBSITE_ID_METADATA and isinstance(value, str):
                website_id = value.strip()
        website_id = website_id or ""
        if len(website_id) > CONTEXT_LIMITS["website_id"]:
            raise InvalidArgument.one(
                WEBSITE_ID_METADATA, f"must be at most {CONTEXT_LIMITS['website_id']} characters")
        if has_key or not website_id:
            principal = await self._auth.authenticate(context, SCOPE_TRACK_EVENTS)
            return Writer(principal, website_id)
        website, _ = await self.check_origin(website_id, _metadata(context, ORIGIN_METADATA))
        note_project(website.project_id)
        self._auth.count(context, "", website.website_id)
        principal = Principal(website.project_id, "", frozenset({SCOPE_TRACK_EVENTS}),
                              frozenset({website.website_id}))
        return Writer(principal, website.website_id, by_website=True)

    async def authorize(self, writer: Writer, docs: list[dict[str, Any]],
                        paths: Sequence[str]) -> None:
        """Check (and default) the website of each event document before it is stored."""
        if writer.website_id:
            for doc in docs:
                if not doc.get("website_id"):
                    doc["website_id"] = writer.website_id
        await self.authorize_websites(writer, [doc.get("website_id") or "" for doc in docs],
                                      paths)

    async def authorize_websites(self, writer: Writer, website_ids: Sequence[str],
                                 paths: Sequence[str]) -> None:
        principal = writer.principal
        named = sorted({website_id for website_id in website_ids if website_id})
        known = await self.websites(named) if named else {}
        if not principal.websites and all(
                website.project_id == principal.project_id for website in known.values()):
            return  # no event can be refused: the paths are not needed
        for website_id, path in zip(website_ids, paths, strict=True):
            website = known.get(website_id)
            if website is not None and website.project_id != principal.project_id:
                raise PermissionDenied(
                    f"{path}: website {website_id!r} belongs to another project",
                    reason=WEBSITE_SCOPE_MISMATCH, metadata={"website_id": website_id})
            if principal.websites and website_id not in principal.websites:
                which = f"website {website_id!r}" if website_id else "an event naming no website"
                raise PermissionDenied(
                    f"{path}: the API key may not write {which}; it is limited to "
                    f"{', '.join(sorted(principal.websites))}",
                    reason=WEBSITE_NOT_ALLOWED, metadata={"website_id": website_id})

