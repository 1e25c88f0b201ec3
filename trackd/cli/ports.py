"""The two ports of ``trackd serve --workers N``, held by the supervisor for its lifetime.

The supervisor binds a ``SO_REUSEPORT`` socket to each port (never listening, so it takes no
connection): it holds the port for the service's lifetime and, for port 0, picks it. Every
worker then listens on the same ports with ``SO_REUSEPORT`` and the kernel spreads incoming
connections over them.

May import: :mod:`trackd.cli.serve` (how a port that cannot be had is reported) and
:mod:`trackd.cli.settings`.
"""

from __future__ import annotations

import socket

from trackd.cli.serve import bind_problem, cannot_listen
from trackd.cli.settings import Settings


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket holding ``host:port``; OSError if not."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def hold_ports(settings: Settings) -> list[socket.socket]:
    """The gRPC and HTTP ports, held; one line naming the setting when one cannot be had."""
    held: list[socket.socket] = []
    try:
        for what, setting, port in (("gRPC", "grpc_port", settings.grpc_port),
                                    ("the REST gateway", "http_port", settings.http_port)):
            # A plain bind first: it fails on a port another trackd (one process, or the
            # workers of another supervisor) holds, which SO_REUSEPORT alone would share.
            if port and (problem := bind_problem(settings.host, port)):
                raise cannot_listen(what, setting, settings.host, port, problem)
            try:
                held.append(reserve_port(settings.host, port))
            except OSError as exc:
                raise cannot_listen(what, setting, settings.host, port,
                                    str(exc.strerror or exc).lower()) from exc
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held
