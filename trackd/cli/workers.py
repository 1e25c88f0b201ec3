"""One worker process of ``trackd serve --workers N``: ``python -m trackd.cli.workers``.

The supervisor (:mod:`trackd.cli.supervisor`) starts each worker as a new interpreter (never a
fork of a process with grpc's threads), in a session of its own, with every setting in its
environment (:mod:`trackd.cli.worker_environment`). The worker is a whole gateway and gRPC server,
as :func:`trackd.cli.serve.serve` runs them, in the role :class:`trackd.cli.worker_role.WorkerRole`
gives it; it gets SIGTERM (and drains) when the supervisor dies (``PR_SET_PDEATHSIG``), so none
outlives it.

A drain can wait on something that never comes (a database that died with the supervisor,
or froze; a background task that lost its cancellation): so a thread of the worker's own
(:func:`watch_parent`) also watches its parent, asks for the drain when the supervisor is
gone (should ``PR_SET_PDEATHSIG`` have missed it), and ends the process if the drain has
not finished within :func:`trackd.cli.worker_role.drain_bound` (``2 *
TRACKD_SHUTDOWN_GRACE_SECONDS + 5`` s), the bound the supervisor itself gives a drain.

May import: the other ``cli`` modules.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time

from trackd.cli.logs import configure as configure_logging
from trackd.cli.serve import run, serve
from trackd.cli.settings import load
from trackd.cli.usage import UsageError
from trackd.cli.worker_role import WorkerRole, drain_bound

log = logging.getLogger("trackd")

PR_SET_PDEATHSIG = 1
# How often the worker looks whether its supervisor is still its parent.
PARENT_POLL_SECONDS = 0.5
# The exit status of a worker whose supervisor was gone (at its start, or whose drain did
# not finish in time).
EXIT_ORPHANED = 70


def die_with_parent(parent: int) -> None:
    """SIGTERM (drain) when the supervisor dies; exit now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(EXIT_ORPHANED)


def watch_parent(parent: int, bound: float) -> threading.Thread:
    """Once the supervisor is gone: SIGTERM to this process (the drain), and the process
    ends ``bound`` seconds later if the drain has not ended it by then.

    A thread, not a task of the event loop: it must act while the loop waits on a drain
    that will not finish.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        # Usually PR_SET_PDEATHSIG has sent it already: a second one asks for the same drain.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(bound)
        log.error("the supervisor (pid %d) is gone and this worker's drain did not finish "
                  "within %.0f s: exiting now", parent, bound)
        for handler in logging.getLogger().handlers + log.handlers:
            handler.flush()
        os._exit(EXIT_ORPHANED)

    thread = threading.Thread(target=watch, name="trackd-parent-watch", daemon=True)
    thread.start()
    return thread


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
        watch_parent(args.parent, drain_bound(settings.shutdown_grace_seconds))
        assert settings.mongodb_uri, "the supervisor names the database"
        return run(serve(settings, settings.mongodb_uri,
                         worker=WorkerRole(args.index, args.socket)))
    except UsageError as exc:
        print(f"trackd: worker {args.index}: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(worker_main())
