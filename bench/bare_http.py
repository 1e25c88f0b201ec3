"""The bare aiohttp baseline: a server that answers 202 to a JSON POST and does nothing else.

``python -m bench.bare_http --port P`` serves ``POST /api/v1/events`` (and ``/batch``) the
way trackd's gateway is served (uvloop, no access log): read the body, parse it with
orjson, answer VibeFollow's 202. Its CPU per request is the floor any aiohttp handler pays.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
from aiohttp import web

ACCEPTED = orjson.dumps({"data": {"accepted": True}})


async def accept(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=ACCEPTED, status=202, content_type="application/json")


async def serve(host: str, port: int) -> None:
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
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
