"""What the SDK raises and what it hands to ``on_error``.

- :class:`QueueFull`: ``track()``/``identify()`` with the queue full under the "raise"
  policy (or "block" after its timeout); nothing was queued.
- :class:`ClientClosed`: ``track()``/``identify()`` after ``close()``.
- :class:`DeliveryError`: given to ``on_error`` when a batch failed for good: the server
  refused it (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, any status that is not
  retryable), or it was still unsent when ``close()`` ran out of time. It carries the
  status, the server's ``google.rpc`` details (ErrorInfo reason, BadRequest field paths)
  and the ids of the events (or users) it held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc


class QueueFull(Exception):
    """The queue holds ``max_queue_size`` items; this one was not queued."""


class ClientClosed(RuntimeError):
    """The client was closed; it queues nothing more."""


@dataclass(frozen=True)
class FieldViolation:
    """One field the server named in a BadRequest, such as ``events[3].name``."""

    field: str
    description: str


@dataclass(eq=False)
class DeliveryError(Exception):
    """A batch that will not be delivered, and why."""

    code: grpc.StatusCode | None  # None: given up locally (closed before it was sent)
    message: str
    rpc: str                      # "BatchTrack" or "BatchUpsertUsers"
    ids: tuple[str, ...]          # event ids, or users' external ids
    reason: str = ""              # the ErrorInfo reason, such as "IDEMPOTENCY_KEY_REUSE"
    field_violations: tuple[FieldViolation, ...] = field(default=())

    def __str__(self) -> str:
        code = self.code.name if self.code is not None else "NOT_SENT"
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.rpc} of {len(self.ids)} failed: {code}{reason}: {self.message}"
