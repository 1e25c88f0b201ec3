"""What one answer to a batch means, for both clients: how many items were stored, and
what to tell the caller about the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from trackd.v1 import tracking_pb2, users_pb2
from trackd_client.buffer import Batch, Buffer, Kind
from trackd_client.errors import DeliveryError, FieldViolation
from trackd_client.retry import RETRYABLE, STOPS_THE_CLIENT, details

log = logging.getLogger("trackd_client")

ErrorCallback = Callable[[DeliveryError], object]


@dataclass(frozen=True)
class Failure:
    """A failed attempt: retry it after ``retry_delay`` (or backoff), or give up."""

    retryable: bool
    stops: bool  # the key cannot send this kind of batch at all: stop sending it
    retry_delay: float | None
    error: DeliveryError


def failure(batch: Batch, code: grpc.StatusCode, message: str,
            trailing: Sequence[tuple[str, str | bytes]] | None) -> Failure:
    found = details(trailing)
    error = DeliveryError(code=code, message=message, rpc=batch.rpc, ids=batch.ids(),
                          reason=found.reason, field_violations=found.field_violations)
    return Failure(code in RETRYABLE, code in STOPS_THE_CLIENT, found.retry_delay, error)


def stopped_kinds(kind: Kind, error: DeliveryError) -> tuple[Kind, ...]:
    """What the client stops sending after ``error``: everything for a key the server
    does not know (UNAUTHENTICATED), this kind only for a key lacking its scope."""
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        return ("events", "users")
    return (kind,)


def settle(buffer: Buffer, stopped: dict[Kind, DeliveryError], batch: Batch, sent: int,
           error: DeliveryError | None, fail: Failure | None) -> bool:
    """Account a finished batch (the caller holds the buffer's lock); whether it is the
    first to stop its kind, whose queued batches are then failed too."""
    buffer.finish(batch, sent, len(batch.messages) - sent)
    if error is None or fail is None or not fail.stops or batch.kind in stopped:
        return False
    kinds = stopped_kinds(batch.kind, error)
    for kind in kinds:
        stopped.setdefault(kind, error)
    buffer.fail_queued(kinds)
    return True


def not_sent(batch: Batch, why: str) -> DeliveryError:
    return DeliveryError(code=None, message=why, rpc=batch.rpc, ids=batch.ids())


def accepted(batch: Batch, response: Message) -> tuple[int, DeliveryError | None]:
    """How many items of ``batch`` the response says are stored, and an error for the
    rest (BatchUpsertUsers stores the valid users and reports the others).

    Events stored with tracking plan violations (the project's plan in observe mode) are
    stored: they are logged once per batch as a warning, never reported as failed."""
    if isinstance(response, tracking_pb2.BatchTrackResponse) and response.event_violations:
        first = response.event_violations[0].violations[0]
        log.warning("trackd_client: %d of %d events of a batch break the tracking plan "
                    "(version %d) and were stored with their violations; first: %s %s",
                    len(response.event_violations), len(batch.messages),
                    response.plan_version, first.field, first.message)
    if not isinstance(response, users_pb2.BatchUpsertUsersResponse) or not response.errors:
        return len(batch.messages), None
    ids = batch.ids()
    rejected = tuple(ids[e.index] for e in response.errors if 0 <= e.index < len(ids))
    error = DeliveryError(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        message=f"{response.rejected_count} of {len(ids)} users were rejected: "
                f"{response.errors[0].message}",
        rpc=batch.rpc, ids=rejected, reason=response.errors[0].code,
        field_violations=tuple(FieldViolation(f"users[{e.index}].{e.field}", e.message)
                               for e in response.errors))
    return response.accepted_count, error


def report(error: DeliveryError, on_error: ErrorCallback | None, *,
           stops: bool = False) -> None:
    """The one log line, and the caller's callback, for a batch that will not arrive;
    ``stops``: the key may not send such batches, and the client sends no more."""
    log.error("trackd_client: %s%s", error,
              ("; the API key is not accepted: the client sends nothing more"
               if error.code == grpc.StatusCode.UNAUTHENTICATED else
               f"; the API key may not call {error.rpc}: the client sends no more of these")
              + " and counts them failed" if stops else "")
    if on_error is not None:
        try:
            on_error(error)
        except Exception:
            log.exception("trackd_client: the on_error callback raised")
