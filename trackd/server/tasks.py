"""Stopping background tasks: cancel one and wait until it has ended."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and return once it has ended, however it ended.

    ``asyncio.wait`` rather than ``suppress(CancelledError)`` around ``await task``: that
    would also swallow a cancellation of the caller (a stop given up on, or bounded by
    ``asyncio.timeout``), so a task that ignores its cancellation could hold the caller
    forever.
    """
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a task that failed as it stopped is not news


def being_cancelled() -> bool:
    """Whether the running task was asked to stop, even if its CancelledError was lost.

    A driver error raised while a cursor or change stream closes on the way out of a
    cancelled ``await`` (PyMongo closes it, and the database is gone) takes the
    CancelledError's place; a loop that catches storage errors and tries again must ask
    this, or it runs on until the database is back and holds its ``cancel_and_wait``.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
