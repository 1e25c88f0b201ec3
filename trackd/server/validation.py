"""A tracking request's events and users checked against the server's rules, and each
turned into what is stored: :func:`event_document` and :func:`user_change`.

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
from datetime import UTC, datetime
from typing import Any

import orjson

from trackd.server.errors import FieldViolation
from trackd.server.properties import (
    StructProperties,
    check_json_size,
    check_size,
    json_object,
    json_properties,
    struct_properties,
    too_many_keys,
    valid_trait_key,
)
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
    (beyond it the conversion fails). Every Timestamp a request carries is read so."""
    if not timestamp_in_range(value.seconds, value.nanos):
        violations.append(FieldViolation(path, "is out of range"))
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


def event_document(
    event: tracking_pb2.Event,
    path: str,
    project_id: str,
    received_at: datetime,
    event_id: str,
    violations: list[FieldViolation],
) -> dict[str, Any]:
    """The stored form of ``event``; appends to ``violations`` what is wrong with it."""
    if not event.name:
        violations.append(FieldViolation(f"{path}.name", "is required"))
    _check_length(violations, f"{path}.name", event.name, MAX_NAME_CHARS)
    _check_length(violations, f"{path}.event_id", event.event_id, MAX_ID_CHARS)
    _check_length(violations, f"{path}.external_user_id", event.external_user_id, MAX_ID_CHARS)
    _check_length(violations, f"{path}.anonymous_id", event.anonymous_id, MAX_ID_CHARS)
    if not event.external_user_id and not event.anonymous_id:
        violations.append(FieldViolation(
            f"{path}.external_user_id", "is required when anonymous_id is empty"))

    timestamp = received_at
    if event.HasField("timestamp"):
        timestamp = checked_datetime(event.timestamp, f"{path}.timestamp",
                                     violations) or received_at

    properties: dict[str, Any] = {}
    if event.properties_json:
        if event.HasField("properties"):
            violations.append(FieldViolation(f"{path}.properties_json", BOTH_ENCODINGS))
        else:
            properties = json_properties(event.properties_json, path, violations)
    elif event.HasField("properties"):
        properties = struct_properties(event.properties, path, violations)

    doc: dict[str, Any] = {
        "project_id": project_id,
        "event_id": event_id,
        "name": event.name,
        "user_id": event.external_user_id or None,
        "anonymous_id": event.anonymous_id or None,
        "timestamp": timestamp,
        "received_at": received_at,
        "properties": properties,
    }
    if event.client_context_json:
        client_context = _client_context(event.client_context_json, path, violations)
        if client_context is not None:
            doc["client_context"] = client_context
    if event.HasField("context"):
        for name, limit in CONTEXT_LIMITS.items():
            value: str = getattr(event.context, name)
            if value:
                _check_length(violations, f"{path}.context.{name}", value, limit)
                doc[name] = value
    return doc


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
