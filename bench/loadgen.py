"""What every Python load generator shares: the measurement window, workers, the result.

The orchestrator picks the window as two wall-clock instants (``--start``, ``--end``) and
samples the servers' CPU time at exactly those instants. A load generator starts sending
as soon as it is up (what comes before ``--start`` is warm-up), counts only the operations
that *complete* inside the window, stops sending at ``--end``, lets what is in flight
finish, and prints one JSON line (:class:`LoadResult`) on stdout. Several processes can
share a window; the orchestrator merges their results with :func:`merge`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# One operation: given a sequence number unique in this process, do it and return how many
# events it carried; raise on failure.
Operation = Callable[[int], Awaitable[int]]


@dataclass
class LoadResult:
    """What happened inside the window, as seen by the load generator(s)."""

    ops: int = 0                 # operations that succeeded
    events: int = 0              # events those operations carried
    errors: int = 0              # operations that failed
    duration: float = 0.0        # window length, seconds
    latencies_us: list[int] = field(default_factory=list)  # of the successful ops
    loadgen_cpu: float = 0.0     # CPU seconds the load generator used in the window
    first_error: str = ""
    late: bool = False           # the generator started sending only after the window began

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> LoadResult:
        return cls(**json.loads(line))


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def merge(results: Sequence[LoadResult]) -> LoadResult:
    merged = LoadResult(duration=max((r.duration for r in results), default=0.0))
    for result in results:
        merged.ops += result.ops
        merged.events += result.events
        merged.errors += result.errors
        merged.latencies_us.extend(result.latencies_us)
        merged.loadgen_cpu += result.loadgen_cpu
        merged.first_error = merged.first_error or result.first_error
        merged.late = merged.late or result.late
    return merged


def add_window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=float, required=True,
                        help="window start, seconds since the epoch")
    parser.add_argument("--end", type=float, required=True,
                        help="window end, seconds since the epoch")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="operations in flight at once")
    parser.add_argument("--run-id", default="run", help="prefix of every event id")
    parser.add_argument("--proc-index", type=int, default=0,
                        help="this process's index among those sharing the window")


def event_id(run_id: str, proc_index: int, seq: int) -> str:
    return f"{run_id}-{proc_index}-{seq}"


def event_fields(seq: int) -> dict[str, Any]:
    """The body of one event (without its id): the README's example, made to vary."""
    return {
        "external_user_id": f"usr_{seq % 10_000}",
        "name": "user_signed_up",
        "properties": {"plan": "trial", "source": "organic", "n": seq},
    }


async def run_window(op: Operation, concurrency: int, start: float, end: float,
                     drain_timeout: float = 30.0) -> LoadResult:
    """Run ``concurrency`` workers calling ``op`` until ``end``; measure inside the window."""
    result = LoadResult(duration=end - start)
    counter = iter(range(sys.maxsize))
    cpu_marks: dict[str, float] = {}
    result.late = time.time() > start

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        cpu_marks["start"] = time.process_time()
        await asyncio.sleep(max(0.0, end - time.time()))
        cpu_marks["end"] = time.process_time()

    async def worker() -> None:
        while True:
            began = time.perf_counter()
            if time.time() >= end:
                return
            try:
                events = await op(next(counter))
            except Exception as exc:  # a failed operation is counted, not fatal
                done = time.time()
                if start <= done <= end:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                continue
            done = time.time()
            if start <= done <= end:
                result.ops += 1
                result.events += events
                result.latencies_us.append(int((time.perf_counter() - began) * 1e6))

    marker = asyncio.ensure_future(mark_cpu())
    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await marker
    _, pending = await asyncio.wait(workers, timeout=drain_timeout)
    for task in pending:
        task.cancel()
    result.loadgen_cpu = cpu_marks["end"] - cpu_marks["start"]
    return result


def run(main: Coroutine[Any, Any, LoadResult]) -> None:
    """Run a load generator's coroutine on uvloop and print its result line."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(main)
    print(result.to_json(), flush=True)
