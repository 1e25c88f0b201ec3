"""The clients' settings, with their defaults, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trackd_client import limits
from trackd_client.delivery import ErrorCallback
from trackd_client.retry import Backoff

WhenFull = Literal["block", "drop", "raise"]


@dataclass(frozen=True)
class Options:
    """How a client batches, queues and retries.

    - ``batch_size``: events per BatchTrack (at most the server's 500); a batch goes out
      when it is full or its oldest event has waited ``flush_interval`` seconds.
    - ``max_batch_bytes``: a batch is cut short before it would exceed this, well below
      the server's 16 MiB message limit.
    - ``max_queue_size``: items queued and not yet taken into a batch; when it is reached,
      ``when_full`` decides: "block" waits up to ``block_timeout`` seconds for room, then
      raises QueueFull; "drop" discards the item and counts it in ``stats().dropped``;
      "raise" raises QueueFull at once.
    - ``max_in_flight``: batches being sent (or retried) at once.
    - ``rpc_timeout``: the deadline of each attempt (DEADLINE_EXCEEDED is retried).
    - ``backoff``: waits between retries; ``max_attempts`` bounds the attempts of one
      batch (None: retry until ``close()`` runs out of time).
    - ``close_timeout``: what ``close()`` (and the exit-time flush) give the queue.
    - ``on_error``: called (from a sender thread or task) with a DeliveryError for each
      batch that failed for good; it is also logged on the ``trackd_client`` logger.
    """

    batch_size: int = limits.MAX_BATCH_EVENTS
    flush_interval: float = 0.2
    max_batch_bytes: int = 4 * 1024 * 1024
    max_queue_size: int = 10_000
    when_full: WhenFull = "block"
    block_timeout: float = 1.0
    max_in_flight: int = 2
    rpc_timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None
    close_timeout: float = 5.0
    on_error: ErrorCallback | None = None
    channel_options: Sequence[tuple[str, Any]] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= limits.MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size: must be 1 to {limits.MAX_BATCH_EVENTS}")
        if self.when_full not in ("block", "drop", "raise"):
            raise ValueError("when_full: must be 'block', 'drop' or 'raise'")
        if self.max_queue_size < 1 or self.max_in_flight < 1:
            raise ValueError("max_queue_size and max_in_flight: must be at least 1")
        if self.flush_interval < 0 or self.block_timeout < 0:
            raise ValueError("flush_interval and block_timeout: must not be negative")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts: must be at least 1, or None")

    def grpc_options(self) -> list[tuple[str, Any]]:
        return [("grpc.max_send_message_length", limits.MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES),
                *self.channel_options]
