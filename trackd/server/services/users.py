"""trackd.v1.UserService: upsert, batch upsert, get, update, delete, and event history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from trackd.server.auth import SCOPE_USERS_READ, SCOPE_USERS_WRITE, Authenticator
from trackd.server.errors import FieldViolation, InvalidArgument, NotFound, require, storage_call
from trackd.server.idempotency import IdempotencyGuard
from trackd.server.messages import event_message, user_message
from trackd.server.validation import user_change, validate_idempotency_key
from trackd.storage.history import EventHistory, decode_cursor
from trackd.storage.users import UserChange, UserRepository
from trackd.v1 import errors_pb2, users_pb2, users_pb2_grpc
from trackd.wire.limits import MAX_BATCH_USERS

T = TypeVar("T")
ResponseT = TypeVar("ResponseT", bound=Message)

USER_NOT_FOUND = errors_pb2.ERROR_REASON_USER_NOT_FOUND
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def _user_not_found(external_id: str = "", email: str = "") -> NotFound:
    which = f"external id {external_id!r}" if external_id else f"email {email!r}"
    return NotFound(f"no user with {which}", reason=USER_NOT_FOUND)


def _one_identifier(external_id: str, email: str) -> None:
    if bool(external_id) == bool(email):
        raise InvalidArgument.one("external_id", "set exactly one of external_id and email")


class UserService(users_pb2_grpc.UserServiceServicer):
    def __init__(
        self, auth: Authenticator, users: UserRepository, history: EventHistory,
        idempotency: IdempotencyGuard,
    ) -> None:
        self._auth = auth
        self._users = users
        self._history = history
        self._idempotency = idempotency

    async def _idempotent(
        self, project_id: str, scope: str, request: Any, response_type: type[ResponseT],
        execute: Callable[[], Awaitable[ResponseT]],
    ) -> ResponseT:
        return await self._idempotency.run(project_id, scope, request.idempotency_key, request,
                                           response_type, execute)

    @staticmethod
    def _change(user: users_pb2.User, path: str, idempotency_key: str) -> UserChange:
        violations: list[FieldViolation] = validate_idempotency_key(idempotency_key)
        change = user_change(user, path, violations)
        if violations:
            raise InvalidArgument(violations)
        return change

    async def _write(
        self, request: users_pb2.UpsertUserRequest | users_pb2.UpdateUserRequest,
        context: grpc.aio.ServicerContext, rpc: str, response_type: type[ResponseT],
        respond: Callable[[users_pb2.User, bool], ResponseT], *, create: bool,
    ) -> ResponseT:
        """UpsertUser (``create``) and UpdateUser (the user must exist): one write, kept
        idempotent, answered by ``respond(user, created)``."""
        principal = await self._auth.authenticate(context, SCOPE_USERS_WRITE)
        change = self._change(request.user, "user", request.idempotency_key)

        async def write() -> ResponseT:
            doc, created = await storage_call(self._users.upsert(
                principal.project_id, request.user.external_id, change, datetime.now(UTC),
                create=create))
            if doc is None:  # only without ``create``: an upsert creates a missing user
                raise _user_not_found(request.user.external_id)
            return respond(user_message(doc), created)

        return await self._idempotent(principal.project_id, rpc, request, response_type, write)

    async def UpsertUser(
        self, request: users_pb2.UpsertUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.UpsertUserResponse:
        return await self._write(
            request, context, "UpsertUser", users_pb2.UpsertUserResponse,
            lambda user, created: users_pb2.UpsertUserResponse(user=user, created=created),
            create=True)

    async def BatchUpsertUsers(
        self, request: users_pb2.BatchUpsertUsersRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.BatchUpsertUsersResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_WRITE)
        count = len(request.users)
        if not 1 <= count <= MAX_BATCH_USERS:
            raise InvalidArgument.one(
                "users", f"a batch holds 1 to {MAX_BATCH_USERS} users, got {count}")
        key_violations = validate_idempotency_key(request.idempotency_key)
        if key_violations:
            raise InvalidArgument(key_violations)

        async def upsert_all() -> users_pb2.BatchUpsertUsersResponse:
            errors: list[users_pb2.RecordError] = []
            valid: list[tuple[int, str, UserChange]] = []
            for index, user in enumerate(request.users):
                violations: list[FieldViolation] = []
                change = user_change(user, "", violations)
                if violations:
                    first = violations[0]
                    field = first.field.removeprefix(".")
                    errors.append(users_pb2.RecordError(
                        index=index, code="invalid_argument", field=field,
                        message=f"{field} {first.description}",
                        description=first.description))
                else:
                    valid.append((index, user.external_id, change))
            outcomes = await storage_call(self._users.bulk_upsert(
                principal.project_id, [(ext, change) for _, ext, change in valid],
                datetime.now(UTC)))
            created = 0
            for (index, _, _), outcome in zip(valid, outcomes, strict=True):
                if isinstance(outcome, str):
                    errors.append(users_pb2.RecordError(
                        index=index, code="internal", message=outcome))
                elif outcome:
                    created += 1
            errors.sort(key=lambda error: error.index)
            return users_pb2.BatchUpsertUsersResponse(
                accepted_count=count - len(errors), rejected_count=len(errors),
                errors=errors, created_count=created)

        return await self._idempotent(principal.project_id, "BatchUpsertUsers", request,
                                      users_pb2.BatchUpsertUsersResponse, upsert_all)

    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.GetUserResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_READ)
        _one_identifier(request.external_id, request.email)
        doc = await storage_call(self._users.get(
            principal.project_id, external_id=request.external_id, email=request.email))
        if doc is None:
            raise _user_not_found(request.external_id, request.email)
        return users_pb2.GetUserResponse(user=user_message(doc))

    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.UpdateUserResponse:
        return await self._write(
            request, context, "UpdateUser", users_pb2.UpdateUserResponse,
            lambda user, _: users_pb2.UpdateUserResponse(user=user), create=False)

    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.DeleteUserResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_WRITE)
        _one_identifier(request.external_id, request.email)
        external_id = request.external_id
        if not external_id:
            doc = await storage_call(self._users.get(principal.project_id, email=request.email))
            if doc is None:
                raise _user_not_found(email=request.email)
            external_id = doc["external_id"]
        deleted = await storage_call(self._users.delete(principal.project_id, external_id))
        if deleted is None:
            raise _user_not_found(external_id)
        return users_pb2.DeleteUserResponse(external_id=external_id, deleted_events=deleted)

    async def ListUserEvents(
        self, request: users_pb2.ListUserEventsRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ListUserEventsResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_READ)
        require(request.external_id, "external_id")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.one("page_size", f"must be 0 to {MAX_PAGE_SIZE}")
        after = None
        if request.page_token:
            try:
                after = decode_cursor(request.page_token)
            except ValueError as exc:
                raise InvalidArgument.one("page_token", "is not a token from a previous page") \
                    from exc
        docs, token = await storage_call(self._history.page(
            principal.project_id, request.external_id, request.page_size or DEFAULT_PAGE_SIZE,
            after))
        return users_pb2.ListUserEventsResponse(
            events=[event_message(doc) for doc in docs], next_page_token=token)
