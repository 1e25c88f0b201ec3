"""What makes :func:`trackd.cli.serve.serve` one worker of ``trackd serve --workers N``.

A worker is told its number and the private Unix socket its gRPC server also listens on
(its own gateway calls it there), and says on its stdout when it serves, which the
supervisor (:mod:`trackd.cli.supervisor`) waits for. Kept apart from the supervisor and from the
worker process's entry point (:mod:`trackd.cli.workers`) so that :mod:`trackd.cli.serve` can take a
role without importing either of them.

May import: the standard library only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger("trackd")

# A worker prints this on its stdout once both ports and its private socket serve.
READY_MARKER = "trackd-worker-ready"
# Beyond the shutdown grace (twice: HTTP, then gRPC) a worker gets to finish its drain.
EXIT_MARGIN_SECONDS = 5.0


def drain_bound(grace: float) -> float:
    """How long a worker's drain may take: the supervisor SIGKILLs a worker still running
    this long after its SIGTERM, and a worker whose supervisor died ends itself this long
    after (:mod:`trackd.cli.workers`)."""
    return 2 * grace + EXIT_MARGIN_SECONDS


@dataclass(frozen=True)
class WorkerRole:
    """What makes :func:`trackd.cli.serve.serve` a worker: its number and its private socket."""

    index: int
    socket_path: str

    @property
    def grpc_target(self) -> str:
        return f"unix:{self.socket_path}"

    def ready(self, host: str, grpc_port: int, http_port: int) -> None:
        log.info("worker %d (pid %d) is serving: gRPC on %s:%d, REST on %s:%d", self.index,
                 os.getpid(), host, grpc_port, host, http_port)
        print(READY_MARKER, flush=True)
