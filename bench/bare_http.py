"""The bare aiohttp baseline: a server that answers 202 to a JSON POST and does nothing else.

``python -m bench.bare_http --port P`` serves ``POST /api/v1/events`` (and ``/batch``) the
way trackd's gateway is served (uvloop, no access log): read the body, parse it with
orjson, answer VibeFollow's 202. Its CPU per request is the floor any aiohttp handler pays.

``--delay-ms D`` answers each request D ms later (``asyncio.sleep``): with the same
connections, the request rate of a server whose answers take that long. trackd's take as
long as its database's durable writes, so at 64 connections it answers a tenth of the
bare server's requests a second, and a server that wakes for fewer requests at a time
pays more per request for the same work (epoll, reads and writes, the loop's turn). The
bench measures the bare server so paced too, at trackd's median latency (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

ACCEPTED = orjson.dumps({"data": {"accepted": True}})


def accepting(delay: float) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def accept(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=ACCEPTED, status=202, content_type="application/json")

    return accept


async def serve(host: str, port: int, delay: float) -> None:
    accept = accepting(delay)
    app = web.Application(client_max_size=5 * 1024 * 1024)
    app.router.add_post("/api/v1/events", accept)
    app.router.add_post("/api/v1/events/batch", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="answer each request this much later (default 0)")
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
