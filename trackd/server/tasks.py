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
