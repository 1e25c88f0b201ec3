"""Websites over a real gRPC server: CheckOrigin, tracking by website id, keys limited to
websites, scope mismatch, and TrackingService.Identify on its own."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.helpers import KeyFactory, stored_events
from tests.server.helpers import (
    DOMAIN,
    MISSING_KEY,
    SCOPE_MISSING,
    RichError,
    auth,
    batch,
    event,
    invalid,
    rpc_error,
    track,
)
from trackd.server.auth import issue_key
from trackd.server.websites import canonical_origin
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, websites_pb2, websites_pb2_grpc

ORIGIN = "https://shop.example.com"


@pytest.fixture
def websites(channel: grpc.aio.Channel) -> websites_pb2_grpc.WebsiteServiceStub:
    return websites_pb2_grpc.WebsiteServiceStub(channel)


async def make_website(store: Store, project: str = "acme", *, server_side: bool = True) -> str:
    website_id = str(uuid.uuid4())
    await store.websites.insert(website_id, project, [ORIGIN, "http://localhost:3000"],
                                allow_server_side=server_side)
    return website_id


def denied(message: str, reason: str, **metadata: str) -> RichError:
    return RichError(grpc.StatusCode.PERMISSION_DENIED, message,
                     error_info=(reason, DOMAIN, tuple(sorted(metadata.items()))),
                     detail_types=("ErrorInfo",))


def not_found(website_id: str) -> RichError:
    return RichError(grpc.StatusCode.NOT_FOUND, f"no website with id {website_id!r}",
                     error_info=("WEBSITE_NOT_FOUND", DOMAIN, (("website_id", website_id),)),
                     detail_types=("ErrorInfo",))


def by_website(website_id: str, origin: str = "") -> tuple[tuple[str, str], ...]:
    metadata = [("trackd-website-id", website_id)]
    if origin:
        metadata.append(("trackd-origin", origin))
    return tuple(metadata)


@pytest.mark.parametrize(("raw", "canonical"), [
    ("https://Shop.Example.com", "https://shop.example.com"),
    ("https://shop.example.com/", "https://shop.example.com"),
    ("https://shop.example.com:443", "https://shop.example.com"),
    ("http://localhost:80", "http://localhost"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_canonical_origin(raw: str, canonical: str) -> None:
    assert canonical_origin(raw) == canonical


@pytest.mark.parametrize("raw", ["shop.example.com", "ftp://x.com", "https://x.com/path",
                                 "https://x.com?q=1", "https://", "null", "https://x.com:99999"])
def test_not_an_origin(raw: str) -> None:
    with pytest.raises(ValueError, match=r"not an origin|Port"):
        canonical_origin(raw)


async def test_check_origin(
    websites: websites_pb2_grpc.WebsiteServiceStub, store: Store
) -> None:
    website = await make_website(store)
    ok = await websites.CheckOrigin(websites_pb2.CheckOriginRequest(
        website_id=website, origin="https://SHOP.example.com:443"))
    assert ok.origin == ORIGIN
    assert (await websites.CheckOrigin(websites_pb2.CheckOriginRequest(
        website_id=website))).origin == ""
    assert await rpc_error(websites.CheckOrigin(websites_pb2.CheckOriginRequest(
        website_id=website, origin="https://evil.example.net"))) == denied(
        "origin 'https://evil.example.net' is not one of the website's origins",
        "ORIGIN_NOT_AUTHORIZED", origin="https://evil.example.net")
    missing = str(uuid.uuid4())
    assert await rpc_error(websites.CheckOrigin(websites_pb2.CheckOriginRequest(
        website_id=missing, origin=ORIGIN))) == not_found(missing)


async def test_tracking_by_website_id(
    tracking: tracking_pb2_grpc.TrackingServiceStub, store: Store
) -> None:
    website = await make_website(store, "shop")
    response = await tracking.BatchTrack(
        batch([event("a", user="", anonymous_id="v1"),
               event("b", user="", anonymous_id="v1",
                     context=tracking_pb2.EventContext(website_id=website))]),
        metadata=by_website(website, ORIGIN))
    assert response.stored_count == 2
    docs = await stored_events(store, "shop")
    assert sorted((d["name"], d["website_id"]) for d in docs) == [("a", website),
                                                                    ("b", website)]


async def test_website_id_rejections(
    tracking: tracking_pb2_grpc.TrackingServiceStub, store: Store
) -> None:
    website = await make_website(store, server_side=False)
    other = await make_website(store)
    missing = str(uuid.uuid4())
    ev = event("a", user="", anonymous_id="v1")
    assert await rpc_error(tracking.TrackEvent(track(ev), metadata=by_website(missing))) \
        == not_found(missing)
    assert await rpc_error(tracking.TrackEvent(track(ev), metadata=by_website(website))) \
        == denied("this website accepts events only from browsers on its origins "
                  "(the request has no Origin)", "ORIGIN_NOT_AUTHORIZED")
    assert (await rpc_error(tracking.TrackEvent(
        track(ev), metadata=by_website(website, "https://evil.example.net")))).error_info \
        == ("ORIGIN_NOT_AUTHORIZED", DOMAIN, (("origin", "https://evil.example.net"),))
    named_other = event("a", user="", anonymous_id="v1",
                        context=tracking_pb2.EventContext(website_id=other))
    error = await rpc_error(tracking.TrackEvent(track(named_other),
                                                metadata=by_website(website, ORIGIN)))
    assert error.error_info == ("WEBSITE_NOT_ALLOWED", DOMAIN, (("website_id", other),))
    # Neither key nor website: the key is missing.
    assert await rpc_error(tracking.TrackEvent(track(ev))) == MISSING_KEY
    assert await store.db["events"].count_documents({}) == 0


def on(site: str) -> tracking_pb2.Event:
    return event("e", context=tracking_pb2.EventContext(website_id=site))


async def test_keys_and_websites(
    tracking: tracking_pb2_grpc.TrackingServiceStub, store: Store, make_key: KeyFactory
) -> None:
    site_a = await make_website(store, "project-a")
    site_b = await make_website(store, "project-b")
    key_b = await make_key("project-b")
    limited = (await issue_key(store.keys, "project-b", ("track:events",), [site_b])).secret

    error = await rpc_error(tracking.BatchTrack(batch([on(site_b), on(site_a)]),
                                                metadata=auth(key_b)))
    assert error == denied(f"events[1]: website {site_a!r} belongs to another project",
                           "WEBSITE_SCOPE_MISMATCH", website_id=site_a)
    error = await rpc_error(tracking.TrackEvent(track(event("e")), metadata=auth(limited)))
    assert error.error_info == ("WEBSITE_NOT_ALLOWED", DOMAIN, (("website_id", ""),))
    assert await store.db["events"].count_documents({}) == 0

    # An unlimited key may label events with a website id that names no website.
    assert (await tracking.TrackEvent(track(on("site-1")), metadata=auth(key_b))).event_id
    assert (await tracking.TrackEvent(track(on(site_b)), metadata=auth(limited))).event_id
    # The key's website from metadata is the default website of events naming none.
    await tracking.TrackEvent(track(event("d")), metadata=(*auth(limited),
                                                           ("trackd-website-id", site_b)))
    docs = await stored_events(store, "project-b")
    assert sorted((d["name"], d["website_id"]) for d in docs) == [
        ("d", site_b), ("e", site_b), ("e", "site-1")]


async def test_identify(
    tracking: tracking_pb2_grpc.TrackingServiceStub, store: Store, api_key: str,
    make_key: KeyFactory,
) -> None:
    await tracking.TrackEvent(track(event("before", user="", anonymous_id="anon-1")),
                              metadata=auth(api_key))
    request = tracking_pb2.IdentifyRequest(external_id="user-1", anonymous_id="anon-1")
    request.traits.update({"plan": "pro"})
    assert (await tracking.Identify(request, metadata=auth(api_key))).created is True
    assert (await tracking.Identify(request, metadata=auth(api_key))).created is False
    await tracking.TrackEvent(track(event("after", user="", anonymous_id="anon-1")),
                              metadata=auth(api_key))
    assert sorted((d["name"], d["user_id"]) for d in await stored_events(store)) == [
        ("after", "user-1"), ("before", "user-1")]
    user = await store.users.get("acme", external_id="user-1")
    assert user is not None
    assert user["traits"] == {"plan": "pro"}

    bad = tracking_pb2.IdentifyRequest(anonymous_id="a" * 257)
    assert await rpc_error(tracking.Identify(bad, metadata=auth(api_key))) == invalid(
        "external_id", "is required",
        more=(("anonymous_id", "must be at most 256 characters"),))
    no_scope = await make_key(scopes=("users:write",))
    assert await rpc_error(tracking.Identify(request, metadata=auth(no_scope))) == SCOPE_MISSING
    assert await rpc_error(tracking.Identify(request)) == MISSING_KEY
