"""trackd.v1.TrackingService: TrackEvent, BatchTrack, Identify, TrackEvents (in
:mod:`trackd.server.services.carried`) and Subscribe (in
:mod:`trackd.server.services.subscribe`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc

from trackd.server.auth import SCOPE_TRACK_EVENTS, Authenticator
from trackd.server.decisions import DecisionRecorder
from trackd.server.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unavailable,
    storage_call,
)
from trackd.server.idempotency import IdempotencyGuard
from trackd.server.metrics import GRPC_SOURCE
from trackd.server.observability import current_call, note_events, note_written
from trackd.server.pipeline import PipelineClosed, PipelineOverloaded, WritePipeline
from trackd.server.plans.verdict import PlanJudge, Verdict, messages
from trackd.server.services.carried import track_events
from trackd.server.services.subscribe import Subscriptions
from trackd.server.services.users import USER_NOT_FOUND
from trackd.server.validation import (
    CONTEXT_LIMITS,
    MAX_BATCH_EVENTS,
    MAX_ID_CHARS,
    EventDocuments,
    EventPaths,
    user_change,
    validate_idempotency_key,
)
from trackd.server.websites import WebsiteGuard, Writer
from trackd.storage import StorageError, StorageUnavailable
from trackd.storage.users import UserRepository
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, users_pb2

TRACK_EVENT = "TrackEvent"
BATCH_TRACK = "BatchTrack"
IDENTIFY = "Identify"
# The path of a TrackEvent's one event in refusals and plan violations.
_SINGLE_PATH = ("event",)

ResponseT = TypeVar("ResponseT", tracking_pb2.TrackEventResponse,
                    tracking_pb2.BatchTrackResponse)


class TrackingService(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(
        self, auth: Authenticator, pipeline: WritePipeline, idempotency: IdempotencyGuard,
        users: UserRepository, websites: WebsiteGuard, plans: PlanJudge,
        subscriptions: Subscriptions | None = None,
        decisions: DecisionRecorder | None = None,
    ) -> None:
        self._auth = auth
        self._plans = plans
        self._decisions = decisions
        self._subscriptions = subscriptions
        self._pipeline = pipeline
        self._idempotency = idempotency
        self._users = users
        self._websites = websites

    async def TrackEvent(
        self, request: tracking_pb2.TrackEventRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TrackEventResponse:
        note_events(1, writes=not request.validate_only)
        writer = await self._websites.writer(context)
        principal = writer.principal
        docs = self._documents(principal.project_id, TRACK_EVENT, request.idempotency_key,
                               [request.event], single=True)
        await self._websites.authorize(writer, docs, _SINGLE_PATH)
        if request.validate_only:
            await self._resolve_users(principal.project_id, docs, request.unknown_user)
            return tracking_pb2.TrackEventResponse(event_id=request.event.event_id)

        def respond(new: list[bool], verdict: Verdict | None) -> tracking_pb2.TrackEventResponse:
            response = tracking_pb2.TrackEventResponse(event_id=docs[0]["event_id"],
                                                       duplicate=not new[0])
            if verdict is not None:
                response.plan_version = verdict.plan_version
                response.violations.extend(messages(verdict.violations[0], "event"))
            return response

        return await self._store_once(principal.project_id, TRACK_EVENT, request,
                                      tracking_pb2.TrackEventResponse, docs, _SINGLE_PATH,
                                      respond)

    async def BatchTrack(
        self, request: tracking_pb2.BatchTrackRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.BatchTrackResponse:
        count = len(request.events)
        note_events(count, writes=True)
        writer = await self._websites.writer(context)
        principal = writer.principal
        if not 1 <= count <= MAX_BATCH_EVENTS:
            raise InvalidArgument.one(
                "events", f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {count}")
        docs = self._documents(principal.project_id, BATCH_TRACK, request.idempotency_key,
                               request.events, single=False)
        paths = EventPaths(count)
        await self._websites.authorize(writer, docs, paths)

        def respond(new: list[bool], verdict: Verdict | None) -> tracking_pb2.BatchTrackResponse:
            stored = sum(new)
            response = tracking_pb2.BatchTrackResponse(
                event_ids=[doc["event_id"] for doc in docs],
                stored_count=stored, duplicate_count=count - stored)
            if verdict is not None:
                response.plan_version = verdict.plan_version
                response.event_violations.extend(
                    tracking_pb2.EventViolations(index=i, violations=messages(found, paths[i]))
                    for i, found in enumerate(verdict.violations) if found)
            return response

        return await self._store_once(principal.project_id, BATCH_TRACK, request,
                                      tracking_pb2.BatchTrackResponse, docs, paths, respond)

    async def TrackEvents(
        self, request: tracking_pb2.TrackEventsRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.TrackEventsResponse:
        return await track_events(
            self.TrackEvent, request, context,
            self._decisions.on_refused if self._decisions is not None else None)

    async def Subscribe(
        self, request: tracking_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tracking_pb2.SubscribeResponse]:
        if self._subscriptions is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Subscribe is not served here")
            return
        async for response in self._subscriptions.stream(request, context):
            yield response

    async def Identify(
        self, request: tracking_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.IdentifyResponse:
        principal = await self._auth.authenticate(context, SCOPE_TRACK_EVENTS)
        violations: list[FieldViolation] = validate_idempotency_key(request.idempotency_key)
        user = users_pb2.User(external_id=request.external_id)
        if request.anonymous_id:
            user.anonymous_ids.append(request.anonymous_id)
        if request.HasField("traits"):
            user.traits.CopyFrom(request.traits)
        change = user_change(user, "", violations)
        if request.HasField("traits_once"):
            once = users_pb2.User(external_id=request.external_id)
            once.traits.CopyFrom(request.traits_once)
            once_violations: list[FieldViolation] = []
            change.set_once_traits = user_change(once, "", once_violations).set_traits
            violations.extend(FieldViolation(
                v.field.replace(".traits", "traits_once", 1), v.description)
                for v in once_violations if v.field.startswith(".traits"))
        if len(request.previous_user_id) > MAX_ID_CHARS:
            violations.append(FieldViolation(
                "previous_user_id", f"must be at most {MAX_ID_CHARS} characters"))
        if len(request.website_id) > CONTEXT_LIMITS["website_id"]:
            violations.append(FieldViolation(
                "website_id", f"must be at most {CONTEXT_LIMITS['website_id']} characters"))
        if violations:
            # user_change names fields relative to a User: ".external_id", ".anonymous_ids[0]".
            raise InvalidArgument([FieldViolation(
                v.field.removeprefix(".").replace("anonymous_ids[0]", "anonymous_id"),
                v.description) for v in violations])
        await self._websites.authorize_websites(Writer(principal), [request.website_id],
                                                ["website_id"])
        if request.validate_only:
            return tracking_pb2.IdentifyResponse()

        async def identify() -> tracking_pb2.IdentifyResponse:
            _, created = await storage_call(self._users.upsert(
                principal.project_id, request.external_id, change, datetime.now(UTC)))
            if request.previous_user_id:
                await storage_call(self._users.merge_history(
                    principal.project_id, request.previous_user_id, request.external_id))
            return tracking_pb2.IdentifyResponse(created=created)

        return await self._idempotency.run(
            principal.project_id, IDENTIFY, request.idempotency_key, request,
            tracking_pb2.IdentifyResponse, identify)

    @staticmethod
    def _documents(
        project_id: str,
        scope: str,
        idempotency_key: str,
        events: Sequence[tracking_pb2.Event],
        *,
        single: bool,
    ) -> list[dict[str, Any]]:
        """The request's event documents, built in one pass; InvalidArgument listing
        every violation when any event (or the idempotency key) breaks a rule."""
        call = current_call()
        builder = EventDocuments(
            project_id, scope=scope, idempotency_key=idempotency_key,
            via=call.source if call is not None else GRPC_SOURCE,
            request_id=call.request_id if call is not None else "")
        docs = builder.documents(events, single=single)
        if builder.violations:
            raise InvalidArgument(builder.violations)
        return docs

    async def _store_once(
        self, project_id: str, method: str,
        request: tracking_pb2.TrackEventRequest | tracking_pb2.BatchTrackRequest,
        response_type: type[ResponseT], docs: list[dict[str, Any]], paths: Sequence[str],
        respond: Callable[[list[bool], Verdict | None], ResponseT],
    ) -> ResponseT:
        """Store ``docs`` once per idempotency key (a repeat replays the first answer):
        apply the unknown-user policy, judge them by the project's plan (which may
        refuse them), write them durably, log their plan violations, and answer with
        ``respond(new, verdict)`` (``new[i]``: ``docs[i]`` was stored by this call)."""

        async def store() -> ResponseT:
            await self._resolve_users(project_id, docs, request.unknown_user)
            verdict = await self._plans.judge(project_id, docs, paths)
            new = await self._write(docs)
            if verdict is not None:
                await self._plans.record(project_id, docs, verdict, new)
            return respond(new, verdict)

        return await self._idempotency.run(project_id, method, request.idempotency_key,
                                           request, response_type, store)

    async def _resolve_users(
        self, project_id: str, docs: list[dict[str, Any]], policy: int
    ) -> None:
        """Apply the unknown-user policy; give anonymous events of identified visitors
        their user."""
        if policy == tracking_pb2.UNKNOWN_USER_POLICY_REJECT:
            wanted = sorted({doc["user_id"] for doc in docs if doc["user_id"]})
            if wanted:
                known = await storage_call(self._users.existing(project_id, wanted))
                missing = [user_id for user_id in wanted if user_id not in known]
                if missing:
                    raise NotFound(f"no user with external id {missing[0]!r}",
                                   reason=USER_NOT_FOUND, metadata={"external_id": missing[0]})
        anonymous = sorted({doc["anonymous_id"] for doc in docs
                            if doc["user_id"] is None and doc["anonymous_id"]})
        if anonymous:
            owners = await storage_call(self._users.owners_of_anonymous_ids(project_id, anonymous))
            if owners:
                for doc in docs:
                    if doc["user_id"] is None and doc["anonymous_id"] in owners:
                        doc["user_id"] = owners[doc["anonymous_id"]]

    async def _write(self, docs: list[dict[str, Any]]) -> list[bool]:
        try:
            new = await self._pipeline.write(docs)
        except PipelineOverloaded as exc:
            raise Unavailable(f"trackd is overloaded: {exc}; retry later") from exc
        except PipelineClosed as exc:
            raise Unavailable("trackd is shutting down; retry against another instance") from exc
        except StorageUnavailable as exc:
            raise Unavailable("the database is unavailable; the events were not stored, "
                              "retry later") from exc
        except StorageError as exc:
            raise ServiceError("the events could not be stored") from exc
        note_written(new)
        if self._decisions is not None:
            self._decisions.written(current_call(), docs, new)
        return new
