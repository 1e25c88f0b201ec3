"""TrackingService.Subscribe: a project's stored events in commit order, then live.

The stream is the events collection's change stream (:class:`trackd.storage.event_feed.EventStream`)
filtered to the key's project (and names). Each event's cursor is ``c1.`` and the
URL-safe base64 of the project and the change's resume token: any instance resumes just
after it, for as long as the database keeps its change history (at least 25 h on the
embedded database; the oplog's window on a replica set). A cursor names its project, so
another project's key cannot use it (INVALID_ARGUMENT naming ``cursor``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson

from trackd.server.auth import SCOPE_EVENTS_READ, Authenticator
from trackd.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    ServiceError,
    Unavailable,
    to_status,
)
from trackd.server.messages import event_message
from trackd.server.plans.verdict import messages
from trackd.server.request_times import timestamp_field
from trackd.storage import StorageError, StorageUnavailable
from trackd.storage.event_feed import BadPosition, EventStream, HistoryLost, StreamsUnsupported
from trackd.storage.streams import EMPTY_ANSWER_GAP_SECONDS
from trackd.v1 import tracking_pb2

CURSOR_PREFIX = "c1."
MAX_NAMES = 100
READ_BATCH = 500
EXPIRED = ("the cursor points at changes the database no longer keeps (cursors hold at "
           "least 24 h); subscribe again from a time or from now")


def encode_cursor(project_id: str, token: dict[str, Any]) -> str:
    raw = orjson.dumps([project_id, token])
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, project_id: str) -> dict[str, Any]:
    """The resume token of ``cursor``; InvalidArgument when malformed or another project's."""
    try:
        if not cursor.startswith(CURSOR_PREFIX):
            raise ValueError
        body = cursor[len(CURSOR_PREFIX):]
        project, token = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(project, str) or not isinstance(token, dict):
            raise ValueError
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidArgument.one("cursor", "is not a cursor Subscribe returned") from None
    if project != project_id:
        raise InvalidArgument.one("cursor", "belongs to another project")
    return token


class Subscriptions:
    """Serves Subscribe streams from the database's change streams."""

    def __init__(self, auth: Authenticator, db: Any) -> None:
        self._auth = auth
        self._db = db

    async def _open(self, request: tracking_pb2.SubscribeRequest,
                    context: grpc.aio.ServicerContext) -> tuple[str, EventStream]:
        project = (await self._auth.authenticate(context, SCOPE_EVENTS_READ)).project_id
        names = list(request.event_names)
        if len(names) > MAX_NAMES or any(not name for name in names):
            raise InvalidArgument.one("event_names", f"at most {MAX_NAMES} non-empty names")
        after = at = None
        start = request.WhichOneof("start")
        if start == "cursor":
            after = decode_cursor(request.cursor, project)
        elif start == "since":
            at = timestamp_field(request.since, "since")
        stream = EventStream(self._db, project, after=after, at=at, names=names or None)
        try:
            await stream.open()
        except HistoryLost as exc:
            raise FailedPrecondition(EXPIRED) from exc
        except BadPosition as exc:
            raise InvalidArgument.one("cursor", "is not a cursor Subscribe returned") from exc
        except StreamsUnsupported as exc:
            raise Unavailable("Subscribe needs a database with change streams (a replica "
                              "set); this one has none") from exc
        except StorageUnavailable as exc:
            raise Unavailable("the database is unavailable; retry later") from exc
        return project, stream

    async def stream(
        self, request: tracking_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tracking_pb2.SubscribeResponse]:
        try:
            project, stream = await self._open(request, context)
        except ServiceError as exc:
            await context.abort_with_status(to_status(exc))
            return
        try:
            # The stream is open (key, scope and cursor accepted): said at once, not with
            # the first event, so a caller (the console's live stream) knows it before any.
            await context.send_initial_metadata(())
            while True:
                try:
                    batch = await stream.next_batch(READ_BATCH)
                except HistoryLost as exc:
                    raise FailedPrecondition(EXPIRED) from exc
                except StorageError as exc:
                    raise Unavailable("the database is unavailable; resume from the last "
                                      "cursor") from exc
                if not batch:  # as the lanes do: SecantusDB answers after any write
                    await asyncio.sleep(EMPTY_ANSWER_GAP_SECONDS)
                for token, doc in batch:
                    response = tracking_pb2.SubscribeResponse(
                        event=event_message(doc), cursor=encode_cursor(project, token),
                        source=doc.get("via", ""), request_id=doc.get("request_id", ""),
                        plan_version=doc.get("plan_version", 0),
                        plan_violations=messages(doc.get("plan_violations", [])))
                    response.received_at.FromDatetime(doc["received_at"])
                    yield response
        except ServiceError as exc:
            await context.abort_with_status(to_status(exc))
        finally:
            await stream.close()
