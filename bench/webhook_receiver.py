"""A webhook receiver for the delivery bench: answers every POST 204 and counts the
events it carried (``GET /count``); run as its own process, so its CPU is not trackd's.

``python -m bench.webhook_receiver --port P``
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    counts = {"events": 0, "messages": 0}

    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        counts["messages"] += 1
        counts["events"] += len(body["data"]["events"]) if body["type"] == "event.batch" else 1
        return web.Response(status=204)

    async def count(request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
