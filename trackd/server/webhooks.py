"""Managing webhook endpoints: the rules WebhookService and ``trackd webhooks`` share.

Creating checks the URL (:mod:`trackd.outbound.addresses`: http(s), no credentials, no private
address unless allowed), the filter and the batch size, and starts the endpoint at the
change stream's current position (it receives what is stored from then on). Replays
queue messages made exactly as delivery makes them (:func:`trackd.outbound.messages.make_messages`):
a dead letter replayed is the same message; a replay from a time makes the same
``webhook-id`` and body for batch size 1, while batches may group the events differently
(each event keeps its id). The endpoint's deliverer adopts them.
``project_id`` None (the CLI, an operator) reaches any project's endpoint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trackd.outbound.addresses import UrlRefused, check_url
from trackd.outbound.messages import make_messages, new_secret
from trackd.server.errors import FieldViolation, InvalidArgument, NotFound
from trackd.storage import Store
from trackd.storage.event_feed import current_position, received_between
from trackd.storage.webhooks import BY_HAND, Endpoint

MAX_BATCH_SIZE = 500
MAX_EVENT_NAMES = 100
MAX_NAME_CHARS = 512
ROTATION_OVERLAP = timedelta(hours=24)
DEFAULT_ATTEMPTS = 50
MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as listed: never its secrets."""

    endpoint: Endpoint
    queued: int
    dead_letters: int

    @property
    def state(self) -> str:
        return "enabled" if self.endpoint.enabled else \
            f"disabled ({self.endpoint.disabled_reason or BY_HAND})"

    @property
    def lag_seconds(self) -> float:
        lag_from = self.endpoint.lag_from
        if not self.endpoint.enabled or lag_from is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - lag_from).total_seconds())


class Webhooks:
    def __init__(self, store: Store, allow_private: bool) -> None:
        self._store = store
        self._allow_private = allow_private

    async def create(self, project_id: str, url: str, event_names: list[str],
                     batch_size: int) -> tuple[Endpoint, str]:
        violations: list[FieldViolation] = []
        try:
            await check_url(url, self._allow_private)
        except UrlRefused as exc:
            violations.append(FieldViolation("url", str(exc)))
        batch_size = batch_size or 1
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            violations.append(FieldViolation(
                "batch_size", f"must be 1 to {MAX_BATCH_SIZE}, got {batch_size}"))
        if len(event_names) > MAX_EVENT_NAMES:
            violations.append(FieldViolation(
                "event_names", f"at most {MAX_EVENT_NAMES} names are allowed"))
        for index, name in enumerate(event_names):
            if not name or len(name) > MAX_NAME_CHARS:
                violations.append(FieldViolation(
                    f"event_names[{index}]", f"must be 1 to {MAX_NAME_CHARS} characters"))
        if not project_id:
            violations.append(FieldViolation("project", "is required"))
        if violations:
            raise InvalidArgument(violations)
        secret = new_secret()
        endpoint = await self._store.webhooks.insert(
            "ep_" + secrets.token_hex(12), project_id, url, sorted(set(event_names)),
            batch_size, secret, datetime.now(UTC), await current_position(self._store.db))
        return endpoint, secret

    async def get(self, endpoint_id: str, project_id: str | None) -> Endpoint:
        endpoint = await self._store.webhooks.get(endpoint_id, project_id) \
            if endpoint_id else None
        if endpoint is None:
            raise NotFound(f"no webhook endpoint with id {endpoint_id!r}")
        return endpoint

    async def views(self, endpoints: list[Endpoint]) -> list[EndpointView]:
        counts = await self._store.deliveries.counts([e.id for e in endpoints])
        return [EndpointView(e, *counts[e.id]) for e in endpoints]

    async def listing(self, project_id: str | None) -> list[EndpointView]:
        return await self.views(await self._store.webhooks.listing(project_id))

    async def set_enabled(self, endpoint_id: str, project_id: str | None,
                          enabled: bool) -> EndpointView:
        endpoint = await self._store.webhooks.set_enabled(endpoint_id, project_id, enabled,
                                                          BY_HAND)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint with id {endpoint_id!r}")
        return (await self.views([endpoint]))[0]

    async def delete(self, endpoint_id: str, project_id: str | None) -> None:
        if not await self._store.webhooks.delete(endpoint_id, project_id):
            raise NotFound(f"no webhook endpoint with id {endpoint_id!r}")

    async def rotate(self, endpoint_id: str, project_id: str | None) -> tuple[str, datetime]:
        secret = new_secret()
        until = await self._store.webhooks.rotate(endpoint_id, project_id, secret,
                                                  datetime.now(UTC), ROTATION_OVERLAP)
        if until is None:
            raise NotFound(f"no webhook endpoint with id {endpoint_id!r}")
        return secret, until

    async def replay_failed(self, endpoint_id: str, project_id: str | None) -> int:
        endpoint = await self.get(endpoint_id, project_id)
        dead = await self._store.deliveries.dead_letters(endpoint.id)
        queued = await self._queue(endpoint, dead)
        await self._store.deliveries.forget_dead(endpoint.id, [m.msg_id for m in dead])
        return queued

    async def replay_range(self, endpoint_id: str, project_id: str | None, since: datetime,
                           until: datetime | None) -> int:
        endpoint = await self.get(endpoint_id, project_id)
        if until is not None and until <= since:
            raise InvalidArgument.one("until", "must be after since")
        queued = 0
        async for docs in received_between(self._store.db, endpoint.project_id, since, until,
                                           endpoint.event_names or None):
            queued += await self._queue(
                endpoint, make_messages(endpoint.id, endpoint.batch_size, docs))
        return queued

    async def _queue(self, endpoint: Endpoint, messages: list[Any]) -> int:
        if not messages:
            return 0
        first = await self._store.webhooks.take_seq(endpoint.id, len(messages))
        now = datetime.now(UTC)
        for offset, message in enumerate(messages):
            message.seq, message.attempts, message.next_at = first + offset, 0, now
            message.adopted = False
        return await self._store.deliveries.enqueue(endpoint.id, messages)

    async def attempts(self, endpoint_id: str, project_id: str | None,
                       limit: int) -> list[dict[str, Any]]:
        endpoint = await self.get(endpoint_id, project_id)
        limit = limit or DEFAULT_ATTEMPTS
        if not 1 <= limit <= MAX_ATTEMPTS:
            raise InvalidArgument.one("limit", f"must be 1 to {MAX_ATTEMPTS}, got {limit}")
        return await self._store.deliveries.attempts(endpoint.id, limit)
