"""The SDK load generator: one process calling ``trackd_client.Client.track()`` flat out.

``python -m bench.sdk_load --target HOST:PORT --token KEY --batch 500 --concurrency N``
tracks events from its main thread as fast as the client takes them (the "block"
policy: a full queue slows the caller down to what the server acknowledges), with
``max_in_flight`` = ``--concurrency`` batches of ``--batch`` events in flight, and prints
a :class:`bench.loadgen.LoadResult` whose events are those the server acknowledged inside
the window (``stats().sent`` at its end minus at its start). One operation is one event;
there are no per-operation latencies (the SDK does not expose when each event was stored).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from bench.loadgen import LoadResult, add_window_args, event_fields, event_id
from trackd_client import Client


def main(args: argparse.Namespace) -> LoadResult:
    client = Client(args.target, args.token, batch_size=args.batch,
                    max_in_flight=args.concurrency, block_timeout=60)
    result = LoadResult(duration=args.end - args.start, late=time.time() > args.start)
    marks: dict[str, tuple[int, float, int]] = {}

    def mark(name: str, at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        stats = client.stats()
        marks[name] = (stats.sent, time.process_time(), stats.failed)

    def sample() -> None:
        mark("start", args.start)
        mark("end", args.end)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fields = event_fields(0)
    properties = dict(fields["properties"])
    seq = 0
    while time.time() < args.end:
        for _ in range(100):
            seq += 1
            properties["n"] = seq
            client.track(fields["name"], user_id=f"usr_{seq % 10_000}",
                         properties=properties,
                         event_id=event_id(args.run_id, args.proc_index, seq))
    sampler.join()
    client.close(timeout=0)  # what is still queued is past the window
    (sent0, cpu0, failed0), (sent1, cpu1, failed1) = marks["start"], marks["end"]
    result.ops = result.events = sent1 - sent0
    result.errors = failed1 - failed0
    result.loadgen_cpu = cpu1 - cpu0
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="HOST:PORT of trackd's gRPC server")
    parser.add_argument("--token", default="", help="the API key")
    parser.add_argument("--batch", type=int, default=500, help="events per BatchTrack")
    add_window_args(parser)
    logging.disable(logging.ERROR)  # the events left unsent at the end are not news
    print(main(parser.parse_args()).to_json(), flush=True)


if __name__ == "__main__":
    cli()
