"""A tracking request's events and users checked against the server's rules, and each
turned into what is stored: :class:`EventDocuments` and :func:`user_change`.

Every limit is checked here, once, for gRPC and REST alike; a rule only one vendor's
REST API has lives in that dialect's gateway module instead. Field paths in violations
are proto paths relative to the request (``event.name``, ``events[3].external_user_id``).
The limits themselves are :mod:`trackd.wire.limits`' (the gateway's OpenAPI document
states the same numbers), re-exported here as the server's; an event's properties and a
user's traits are read by :mod:`trackd.server.properties`.

May import: :mod:`trackd.server.errors`, :mod:`trackd.server.properties`,
:mod:`trackd.storage.users`, the generated API code and :mod:`trackd.wire`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, overload

import orjson

from trackd.server.errors import FieldViolation
from trackd.server.properties import (
    StructProperties,
    check_json_size,
    check_size,
    json_object,
    json_properties,
    properties_as_sent,
    struct_properties,
    too_many_keys,
    valid_trait_key,
)
from trackd.server.request_times import OUT_OF_RANGE
from trackd.storage.users import UserChange
from trackd.v1 import tracking_pb2, users_pb2

# The server's limits (the wire's module holds them, so the gateway can state them too).
from trackd.wire.limits import MAX_BATCH_EVENTS as MAX_BATCH_EVENTS
from trackd.wire.limits import MAX_BATCH_USERS as MAX_BATCH_USERS
from trackd.wire.limits import MAX_EMAIL_CHARS as MAX_EMAIL_CHARS
from trackd.wire.limits import MAX_ID_CHARS as MAX_ID_CHARS
from trackd.wire.limits import MAX_IDEMPOTENCY_KEY_CHARS as MAX_IDEMPOTENCY_KEY_CHARS
from trackd.wire.limits import MAX_NAME_CHARS as MAX_NAME_CHARS
from trackd.wire.limits import MAX_PHONE_CHARS as MAX_PHONE_CHARS
from trackd.wire.limits import MAX_PROPERTIES_BYTES as MAX_PROPERTIES_BYTES
from trackd.wire.limits import MAX_PROPERTY_DEPTH as MAX_PROPERTY_DEPTH
from trackd.wire.limits import MAX_PROPERTY_KEY_CHARS as MAX_PROPERTY_KEY_CHARS
from trackd.wire.limits import MAX_PROPERTY_KEYS as MAX_PROPERTY_KEYS
from trackd.wire.limits import MAX_TRAIT_KEYS as MAX_TRAIT_KEYS
from trackd.wire.limits import PROFILE_LIMITS as PROFILE_LIMITS
from trackd.wire.limits import timestamp_in_range

CONTEXT_LIMITS = {"namespace": 64, "session_id": MAX_ID_CHARS, "source": 64, "website_id": 64}

_EVENT_ID_NAMESPACE = uuid.UUID("6f9c7f3e-2c1a-4a5e-9a43-3b1f0d7e8c21")

BOTH_ENCODINGS = "must not be set together with properties: set at most one of them"


def checked_datetime(value: Any, path: str,
                     violations: list[FieldViolation]) -> datetime | None:
    """A Timestamp as a datetime; None, with a violation, when out of Timestamp's range
    (beyond it the conversion fails). Every Timestamp an event carries is read so; a
    request's own times (a ``since``) by :mod:`trackd.server.request_times`."""
    if not timestamp_in_range(value.seconds, value.nanos):
        violations.append(FieldViolation(path, OUT_OF_RANGE))
        return None
    moment: datetime = value.ToDatetime(tzinfo=UTC)
    return moment


def _client_context(raw: bytes, path: str,
                    violations: list[FieldViolation]) -> str | None:
    """``client_context_json`` as stored: the object's compact JSON text. Its keys are
    the sending library's (``$lib``), so no key rule applies; only the size does."""
    json_path = f"{path}.client_context_json"
    values = json_object(raw, json_path, violations)
    if values is None:
        return None
    stored = orjson.dumps(values)
    if not check_size(violations, json_path, len(stored)):
        return None
    return stored.decode()


def _check_length(
    violations: list[FieldViolation], path: str, value: str, limit: int
) -> None:
    if len(value) > limit:
        violations.append(FieldViolation(path, f"must be at most {limit} characters"))


def validate_idempotency_key(key: str) -> list[FieldViolation]:
    if key and (len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable()):
        return [FieldViolation(
            "idempotency_key",
            f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters")]
    return []


def derived_event_id(scope: str, idempotency_key: str, index: int) -> str:
    """The id of an event sent without one under an idempotency key: stable on retry."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{scope}\n{idempotency_key}\n{index}"))


def event_path(index: int | None) -> str:
    """The request's path of an event: ``event`` (a single event, ``index`` None) or
    ``events[3]``."""
    return "event" if index is None else f"events[{index}]"


class EventPaths(Sequence[str]):
    """The paths of a batch's ``count`` events (``events[0]``, ...), each made only when
    read: they name fields in refusals, which most batches never have."""

    def __init__(self, count: int) -> None:
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [event_path(i) for i in range(self._count)[index]]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return event_path(index % self._count)


class EventDocuments:
    """One request's events turned into the documents stored, one pass per event: each
    field is checked as it is copied into the document, and the properties are parsed
    and checked in one walk (:func:`trackd.server.properties.properties_as_sent`).
    What is the same for every event of the request is settled once, here: the project,
    the clock (``received_at``), the door it came in by (``via``: a REST dialect or
    grpc, which webhooks and Subscribe say) and its request id, and how an event sent
    without an id gets one. A path string is made only for a violation.

    :meth:`document` appends to :attr:`violations` what is wrong with an event; the
    caller refuses the request when there are any, after every event was read, so one
    refusal lists them all, in request order.
    """

    def __init__(self, project_id: str, *, scope: str, idempotency_key: str, via: str,
                 request_id: str, received_at: datetime | None = None) -> None:
        self.violations: list[FieldViolation] = validate_idempotency_key(idempotency_key)
        self.received_at = received_at or datetime.now(UTC)
        self._project_id = project_id
        self._scope = scope
        self._idempotency_key = idempotency_key
        self._via = via
        self._request_id = request_id

    def documents(self, events: Iterable[tracking_pb2.Event], *,
                  single: bool = False) -> list[dict[str, Any]]:
        """The documents of ``events`` (one event: ``single``, its path ``event``)."""
        if single:
            return [self.document(event, 0, None) for event in events]
        return [self.document(event, index, index) for index, event in enumerate(events)]

    def document(self, event: tracking_pb2.Event, index: int,
                 path_index: int | None) -> dict[str, Any]:
        """The stored form of ``event``, the ``index``-th of its request (which derives
        its id when it has none), at ``event_path(path_index)``."""
        name = event.name
        given_id = event.event_id
        user_id = event.external_user_id
        anonymous_id = event.anonymous_id
        if not name or len(name) > MAX_NAME_CHARS or len(given_id) > MAX_ID_CHARS \
                or len(user_id) > MAX_ID_CHARS or len(anonymous_id) > MAX_ID_CHARS \
                or not (user_id or anonymous_id):
            self._identity_violations(event, event_path(path_index))
        if given_id:
            event_id = given_id
        elif self._idempotency_key:
            event_id = derived_event_id(self._scope, self._idempotency_key, index)
        else:
            event_id = str(uuid.uuid4())

        received_at = self.received_at
        timestamp = received_at
        if event.HasField("timestamp"):
            timestamp = checked_datetime(event.timestamp, f"{event_path(path_index)}.timestamp",
                                         self.violations) or received_at

        properties: dict[str, Any] = {}
        raw = event.properties_json
        if raw:
            if event.HasField("properties"):
                self.violations.append(FieldViolation(
                    f"{event_path(path_index)}.properties_json", BOTH_ENCODINGS))
            else:
                as_sent = properties_as_sent(raw)
                properties = as_sent if as_sent is not None \
                    else json_properties(raw, event_path(path_index), self.violations)
        elif event.HasField("properties"):
            properties = struct_properties(event.properties, event_path(path_index),
                                           self.violations)

        doc: dict[str, Any] = {
            "project_id": self._project_id,
            "event_id": event_id,
            "name": name,
            "user_id": user_id or None,
            "anonymous_id": anonymous_id or None,
            "timestamp": timestamp,
            "received_at": received_at,
            "properties": properties,
        }
        if event.client_context_json:
            client_context = _client_context(event.client_context_json,
                                             event_path(path_index), self.violations)
            if client_context is not None:
                doc["client_context"] = client_context
        if event.HasField("context"):
            context = event.context
            for field, limit in CONTEXT_LIMITS.items():
                value: str = getattr(context, field)
                if value:
                    _check_length(self.violations, f"{event_path(path_index)}.context.{field}",
                                  value, limit)
                    doc[field] = value
        doc["via"] = self._via
        doc["request_id"] = self._request_id
        return doc

    def _identity_violations(self, event: tracking_pb2.Event, path: str) -> None:
        """What is wrong with an event's name and ids, in the order refusals list it."""
        violations = self.violations
        if not event.name:
            violations.append(FieldViolation(f"{path}.name", "is required"))
        _check_length(violations, f"{path}.name", event.name, MAX_NAME_CHARS)
        _check_length(violations, f"{path}.event_id", event.event_id, MAX_ID_CHARS)
        _check_length(violations, f"{path}.external_user_id", event.external_user_id,
                      MAX_ID_CHARS)
        _check_length(violations, f"{path}.anonymous_id", event.anonymous_id, MAX_ID_CHARS)
        if not event.external_user_id and not event.anonymous_id:
            violations.append(FieldViolation(
                f"{path}.external_user_id", "is required when anonymous_id is empty"))


# --- users -------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _check_email(violations: list[FieldViolation], path: str, value: str) -> None:
    if not _EMAIL.match(value):
        violations.append(FieldViolation(path, "must be an email address"))


def user_change(user: users_pb2.User, path: str,
                violations: list[FieldViolation]) -> UserChange:
    """What upserting ``user`` changes; appends to ``violations`` what is wrong with it."""
    change = UserChange()
    if not user.external_id:
        violations.append(FieldViolation(f"{path}.external_id", "is required"))
    _check_length(violations, f"{path}.external_id", user.external_id, MAX_ID_CHARS)
    for name, limit in PROFILE_LIMITS.items():
        if not user.HasField(name):
            continue
        value: str = getattr(user, name)
        if not value:
            change.unset_fields.append(name)
            continue
        _check_length(violations, f"{path}.{name}", value, limit)
        if name == "email":
            _check_email(violations, f"{path}.email", value)
        change.set_fields[name] = value
    for index, email in enumerate(user.emails):
        _check_length(violations, f"{path}.emails[{index}]", email, MAX_EMAIL_CHARS)
        _check_email(violations, f"{path}.emails[{index}]", email)
    for index, phone in enumerate(user.phones):
        if not phone:
            violations.append(FieldViolation(f"{path}.phones[{index}]", "must not be empty"))
        _check_length(violations, f"{path}.phones[{index}]", phone, MAX_PHONE_CHARS)
    for index, anonymous_id in enumerate(user.anonymous_ids):
        if not anonymous_id:
            violations.append(FieldViolation(f"{path}.anonymous_ids[{index}]",
                                             "must not be empty"))
        _check_length(violations, f"{path}.anonymous_ids[{index}]", anonymous_id, MAX_ID_CHARS)
    # A primary address is one of the addresses too.
    change.add_emails = _unique([*change.set_fields.get("email", "").split()[:1], *user.emails])
    change.add_phones = _unique([*([change.set_fields["phone"]]
                                   if "phone" in change.set_fields else []), *user.phones])
    change.add_anonymous_ids = _unique(list(user.anonymous_ids))
    if user.HasField("signed_up_at"):
        signed_up_at = checked_datetime(user.signed_up_at, f"{path}.signed_up_at", violations)
        if signed_up_at is not None:
            change.set_fields["signed_up_at"] = signed_up_at
    if user.HasField("traits"):
        traits_path = f"{path}.traits"
        if not too_many_keys(len(user.traits.fields), MAX_TRAIT_KEYS, "trait", traits_path,
                             violations):
            converter = StructProperties(violations)
            for key, trait in user.traits.fields.items():
                key_path = f"{traits_path}.{key}"
                if not valid_trait_key(key):
                    violations.append(FieldViolation(
                        key_path, "trait keys must be non-empty and contain no '.', '$' or NUL"))
                elif len(key) > MAX_PROPERTY_KEY_CHARS:
                    violations.append(FieldViolation(
                        traits_path, f"trait key longer than {MAX_PROPERTY_KEY_CHARS} characters"))
                elif trait.WhichOneof("kind") in (None, "null_value"):
                    change.unset_traits.append(key)
                else:
                    change.set_traits[key] = converter.value(trait, traits_path, key, 1)
            check_json_size(violations, traits_path, change.set_traits)
    return change


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
