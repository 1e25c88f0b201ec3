"""The fallback HTTP load generator (when wrk is missing): aiohttp in its own process.

``python -m bench.http_load --url URL --mode single|batch ...`` POSTs VibeFollow bodies
(one event, or ``{"events": [...]}``) with ``--concurrency`` connections, every event with
a unique id, and prints a :class:`bench.loadgen.LoadResult`; any status but 2xx is an
error. It costs more CPU per request than wrk, so the orchestrator can split the
connections over several processes sharing one window.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson

from bench.loadgen import LoadResult, add_window_args, event_fields, event_id, run, run_window


def event(run_id: str, proc_index: int, seq: int) -> dict[str, Any]:
    return {**event_fields(seq), "event_id": event_id(run_id, proc_index, seq)}


async def main(args: argparse.Namespace) -> LoadResult:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.token}"}
    batch: int = args.batch
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post(body: bytes, events: int) -> int:
            async with session.post(args.url, data=body) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise RuntimeError(f"HTTP {response.status}")
            return events

        async def single(seq: int) -> int:
            return await post(orjson.dumps(event(args.run_id, args.proc_index, seq)), 1)

        async def many(seq: int) -> int:
            events = [event(args.run_id, args.proc_index, seq * batch + i) for i in range(batch)]
            return await post(orjson.dumps({"events": events}), batch)

        return await run_window(single if args.mode == "single" else many,
                                args.concurrency, args.start, args.end)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("single", "batch"), required=True)
    parser.add_argument("--batch", type=int, default=500, help="events per batch request")
    parser.add_argument("--token", default="", help="the API key")
    add_window_args(parser)
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
