"""One worker process of ``trackd serve --workers N``: ``python -m trackd.cli.workers``.

The supervisor (:mod:`trackd.cli.supervisor`) starts each worker as a new interpreter (never a
fork of a process with grpc's threads), in a session of its own, with every setting in its
environment (:mod:`trackd.cli.worker_environment`). The worker is a whole gateway and gRPC server,
as :func:`trackd.cli.serve.serve` runs them, in the role :class:`trackd.cli.worker_role.WorkerRole`
gives it; it gets SIGTERM (and drains) when the supervisor dies (``PR_SET_PDEATHSIG``), so none
outlives it.

May import: the other ``cli`` modules.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys

from trackd.cli.logs import configure as configure_logging
from trackd.cli.serve import run, serve
from trackd.cli.settings import load
from trackd.cli.usage import UsageError
from trackd.cli.worker_role import WorkerRole

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM (drain) when the supervisor dies; exit now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(70)


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trackd.cli.workers",
                                     description="one trackd worker (run by trackd serve)")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    try:
        settings = load({})
        configure_logging(settings.log_level, settings.log_format)
        assert settings.mongodb_uri, "the supervisor names the database"
        return run(serve(settings, settings.mongodb_uri,
                         worker=WorkerRole(args.index, args.socket)))
    except UsageError as exc:
        print(f"trackd: worker {args.index}: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(worker_main())
