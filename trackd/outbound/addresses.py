"""Which webhook URLs are allowed: http(s), no credentials, and (unless private addresses
are allowed) a host that is not, and does not resolve to, a loopback, private, link-local,
site-local (fec0::/10), shared (100.64/10), multicast, reserved or unspecified address.
An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4
``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it reaches.

The same rule runs twice: when an endpoint is created (:func:`check_url`, resolving the
name) and at every connection (:mod:`trackd.outbound.http`'s resolver, :func:`refused_address`),
so a name that later resolves elsewhere (DNS rebinding) is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix (RFC 6052)


class UrlRefused(ValueError):
    """The URL may not be a webhook endpoint; the message says why."""


def refused_address(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not be connected to; None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for kind, flag in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("site-local", isinstance(ip, ipaddress.IPv6Address)
                        and ip.is_site_local),
                       ("shared", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return f"{ip} is a {kind} address"
    return None


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of an acceptable URL's shape; raises :class:`UrlRefused`."""
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("must not carry credentials")
    if not parts.hostname:
        raise UrlRefused("must name a host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, allow_private: bool) -> None:
    """Raise :class:`UrlRefused` unless ``url`` may be a webhook endpoint now."""
    host, port = parse_url(url)
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UrlRefused(f"host {host} does not resolve ({exc.strerror or exc})") from None
        addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        why = refused_address(address)
        if why is not None:
            raise UrlRefused(f"host {host} is not allowed: {why} "
                             "(set TRACKD_WEBHOOK_ALLOW_PRIVATE=true for local development)")
