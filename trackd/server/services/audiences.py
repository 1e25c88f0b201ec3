"""trackd.v1.AudienceService: evaluate an audience, or match one user against it."""

from __future__ import annotations

import base64
import bisect
import time

import grpc

from trackd.server import metrics
from trackd.server.audiences import AudienceIndex, Evaluator, parse_audience
from trackd.server.auth import SCOPE_USERS_READ, Authenticator
from trackd.server.errors import InvalidArgument, require, storage_call
from trackd.storage.audiences import AudienceQueries
from trackd.v1 import audiences_pb2, audiences_pb2_grpc

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def _encode_token(external_id: str) -> str:
    return base64.urlsafe_b64encode(external_id.encode()).decode()


def _decode_token(token: str) -> str:
    # validate=True: urlsafe_b64decode would drop characters outside the alphabet, so
    # "%%%%" decoded to "" and restarted from the first page instead of failing.
    try:
        external_id = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument.one("page_token", "is not a token from a previous page") from exc
    if not external_id:  # no page ends with an empty external id
        raise InvalidArgument.one("page_token", "is not a token from a previous page")
    return external_id


class AudienceService(audiences_pb2_grpc.AudienceServiceServicer):
    def __init__(self, auth: Authenticator, queries: AudienceQueries,
                 index: AudienceIndex | None = None) -> None:
        self._auth = auth
        self._queries = queries
        self._index = index

    async def _evaluator(self, project_id: str) -> tuple[Evaluator, str]:
        """The evaluator, and its path for metrics: "index" or "events"."""
        view = await self._index.view(project_id) if self._index is not None else None
        return Evaluator(self._queries, project_id, view), "events" if view is None else "index"

    async def EvaluateAudience(
        self, request: audiences_pb2.EvaluateAudienceRequest, context: grpc.aio.ServicerContext
    ) -> audiences_pb2.EvaluateAudienceResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_READ)
        groups = parse_audience(request.audience, "audience")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.one("page_size", f"must be 0 to {MAX_PAGE_SIZE}")
        after = _decode_token(request.page_token) if request.page_token else None
        started = time.perf_counter()
        evaluator, path = await self._evaluator(principal.project_id)
        matched = sorted(await storage_call(evaluator.matching(groups)))
        # From asking the index for a view to having the matching users.
        metrics.AUDIENCE_EVALUATION.labels("EvaluateAudience", path).observe(
            time.perf_counter() - started)
        # Pages are positions in the sorted ids: a page token is the last id returned,
        # so users joining or leaving the audience between pages shift nothing.
        start = 0 if after is None else bisect.bisect_right(matched, after)
        size = request.page_size or DEFAULT_PAGE_SIZE
        page = matched[start:start + size]
        more = start + size < len(matched)
        return audiences_pb2.EvaluateAudienceResponse(
            external_ids=page, total_count=len(matched),
            next_page_token=_encode_token(page[-1]) if more and page else "")

    async def MatchUser(
        self, request: audiences_pb2.MatchUserRequest, context: grpc.aio.ServicerContext
    ) -> audiences_pb2.MatchUserResponse:
        principal = await self._auth.authenticate(context, SCOPE_USERS_READ)
        require(request.external_id, "external_id")
        groups = parse_audience(request.audience, "audience")
        exists = bool(await storage_call(self._queries.profiles(
            principal.project_id, (), {request.external_id})))
        if not exists:
            return audiences_pb2.MatchUserResponse(matches=False, user_exists=False)
        started = time.perf_counter()
        evaluator, path = await self._evaluator(principal.project_id)
        matched = await storage_call(evaluator.matching(groups, {request.external_id}))
        # From asking the index for a view to having the matching users.
        metrics.AUDIENCE_EVALUATION.labels("MatchUser", path).observe(time.perf_counter() - started)
        return audiences_pb2.MatchUserResponse(matches=bool(matched), user_exists=True)
