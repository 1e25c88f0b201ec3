"""trackd's Python SDK: batched, retried, bounded event tracking over gRPC.

``Client`` (threads) and ``AsyncClient`` (asyncio) queue events at ``track()``, send
them in BatchTrack batches with an idempotency key each, retry what may be retried, and
flush at ``close()``. It needs grpcio, protobuf, googleapis-common-protos and trackd's
generated ``trackd.v1`` stubs, nothing of the server.
"""

from trackd_client.async_client import AsyncClient
from trackd_client.buffer import Stats
from trackd_client.errors import ClientClosed, DeliveryError, FieldViolation, QueueFull
from trackd_client.options import Options
from trackd_client.retry import Backoff
from trackd_client.sync_client import Client

__all__ = ["AsyncClient", "Backoff", "Client", "ClientClosed", "DeliveryError",
           "FieldViolation", "Options", "QueueFull", "Stats"]
