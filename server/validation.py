"""Validation and limits common to every client, and the event -> document conversion.

Every limit is checked here, once, for gRPC and REST alike; a rule only one vendor's
REST API has lives in that dialect's gateway module instead. Field paths in violations
are proto paths relative to the request (``event.name``, ``events[3].external_user_id``).

An event's properties arrive as a ``google.protobuf.Struct`` (``properties``) or as one
JSON object in bytes (``properties_json``, what the REST gateway sends: cheaper to encode,
decode and walk). Both go through the same rules with the same messages and field paths
and give the same stored document: :class:`_Properties` walks a Struct,
:class:`_PlainProperties` the orjson-decoded JSON, and both store a number as a Struct's
double would be (:func:`_number`), so a JSON ``3``, ``3.0`` and a Struct's ``3.0`` are all
stored as the integer 3. Only what a Struct cannot hold is the JSON's alone to refuse:
bytes that are not one UTF-8 JSON object, and duplicate keys.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from google.protobuf import struct_pb2

from server.errors import FieldViolation
from storage.users import UserChange
from trackd.v1 import tracking_pb2, users_pb2

# The wire's (the decode limit bounds it), re-exported as one of the server's limits.
from trackd_wire.limits import MAX_BATCH_EVENTS as MAX_BATCH_EVENTS
from trackd_wire.limits import MAX_PROPERTY_DEPTH as MAX_PROPERTY_DEPTH
from trackd_wire.limits import timestamp_in_range

MAX_NAME_CHARS = 512
MAX_ID_CHARS = 256
MAX_PROPERTY_KEYS = 100
MAX_PROPERTIES_BYTES = 1024 * 1024
MAX_PROPERTY_KEY_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 255
CONTEXT_LIMITS = {"namespace": 64, "session_id": MAX_ID_CHARS, "source": 64, "website_id": 64}

# Integral doubles in this range are exact, and are stored as integers.
_EXACT_INT = 2.0**53

_EVENT_ID_NAMESPACE = uuid.UUID("6f9c7f3e-2c1a-4a5e-9a43-3b1f0d7e8c21")

KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"
DEPTH_RULE = f"properties may nest at most {MAX_PROPERTY_DEPTH} levels deep"
BOTH_ENCODINGS = "must not be set together with properties: set at most one of them"
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def valid_property_key(key: str) -> bool:
    """A key of an event's properties (at any depth): not empty, no leading ``$``, no NUL.

    Properties are stored as one whole subdocument, so a ``.`` in a key is just a
    character; a leading ``$`` reads as an operator to MongoDB, and NUL ends a BSON key.
    Nested trait keys follow this rule too."""
    return bool(key) and not key.startswith("$") and "\x00" not in key


def valid_trait_key(key: str) -> bool:
    """A top-level key of a user's traits: a property key that also holds no ``.``.

    Traits are set and unset key by key as ``traits.<key>`` (storage/users.py), where a
    ``.`` would address a nested field instead of naming one."""
    return valid_property_key(key) and "." not in key


def checked_datetime(value: Any, path: str,
                     violations: list[FieldViolation]) -> datetime | None:
    """A Timestamp as a datetime; None, with a violation, when out of Timestamp's range
    (beyond it the conversion fails). Every Timestamp a request carries is read so."""
    if not timestamp_in_range(value.seconds, value.nanos):
        violations.append(FieldViolation(path, "is out of range"))
        return None
    moment: datetime = value.ToDatetime(tzinfo=UTC)
    return moment


def _join(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def _number(number: float, parent: str, key: str | int,
            violations: list[FieldViolation]) -> Any:
    """A number as stored: integral doubles within ±2^53 as integers (exact there)."""
    if not math.isfinite(number):
        violations.append(FieldViolation(_join(parent, key), "numbers must be finite"))
        return None
    if number.is_integer() and -_EXACT_INT <= number <= _EXACT_INT:
        return int(number)
    return number


V = TypeVar("V")


def _key_violation(key: str, path: str) -> FieldViolation | None:
    """Why ``key`` may not name a property of the object at ``path``; None if it may."""
    if not valid_property_key(key):
        return FieldViolation(f"{path}.{key}" if key else path, KEY_RULE)
    if len(key) > MAX_PROPERTY_KEY_CHARS:
        return FieldViolation(
            path, f"property key longer than {MAX_PROPERTY_KEY_CHARS} characters")
    return None


class _Walker(ABC, Generic[V]):
    """Properties to plain values, collecting violations instead of raising: the rules,
    messages, paths and depth counting both encodings share; subclasses read values."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations

    def entries(self, items: Iterable[tuple[str, V]], path: str, depth: int) -> dict[str, Any]:
        """The object at ``path`` (``depth`` levels down; properties are level 1)."""
        if depth > MAX_PROPERTY_DEPTH:
            self.violations.append(FieldViolation(path, DEPTH_RULE))
            return {}
        out: dict[str, Any] = {}
        for key, value in items:
            refused = _key_violation(key, path)
            if refused is not None:
                self.violations.append(refused)
                continue
            out[key] = self.value(value, path, key, depth)
        return out

    @abstractmethod
    def value(self, value: V, parent: str, key: str | int, depth: int) -> Any:
        """Plain ``value``, found at ``key`` of ``parent`` (``depth`` levels down)."""


class _Properties(_Walker[struct_pb2.Value]):
    """A Struct's properties (or traits) as plain values."""

    def struct(self, struct: struct_pb2.Struct, path: str, depth: int) -> dict[str, Any]:
        return self.entries(struct.fields.items(), path, depth)

    def value(self, value: struct_pb2.Value, parent: str, key: str | int, depth: int) -> Any:
        """Plain ``value``, found at ``key`` of ``parent``. The path string is built only
        when needed (a violation, nesting): this runs for every property of every event."""
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            return value.string_value
        if kind == "number_value":
            return _number(value.number_value, parent, key, self.violations)
        if kind == "bool_value":
            return value.bool_value
        if kind == "struct_value":
            return self.entries(value.struct_value.fields.items(), _join(parent, key), depth + 1)
        if kind == "list_value":
            path = _join(parent, key)
            if depth + 1 > MAX_PROPERTY_DEPTH:
                self.violations.append(FieldViolation(path, DEPTH_RULE))
                return []
            return [self.value(item, path, i, depth + 1)
                    for i, item in enumerate(value.list_value.values)]
        return None  # null_value, or unset (which JSON cannot express) read as null


class _PlainProperties(_Walker[Any]):
    """:class:`_Properties`' rules, messages and paths on orjson-decoded JSON values.

    Depth is counted as there (the properties object is level 1; an array is checked
    before it is entered), so the recursion stops :data:`MAX_PROPERTY_DEPTH` levels
    down whatever the JSON's own depth (orjson's parser stops at 1024)."""

    def object(self, values: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        return self.entries(values.items(), path, depth)

    def value(self, value: Any, parent: str, key: str | int, depth: int) -> Any:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            if -_EXACT_INT <= value <= _EXACT_INT:
                return value
            # What a Struct would hold: the nearest double (orjson gives integers beyond
            # 64 bits as doubles already).
            return _number(float(value), parent, key, self.violations)
        if kind is float:
            return _number(value, parent, key, self.violations)
        if kind is dict:
            return self.entries(value.items(), _join(parent, key), depth + 1)
        if kind is list:
            path = _join(parent, key)
            if depth + 1 > MAX_PROPERTY_DEPTH:
                self.violations.append(FieldViolation(path, DEPTH_RULE))
                return []
            return [self.value(item, path, i, depth + 1) for i, item in enumerate(value)]
        raise TypeError(f"orjson decoded a {kind.__name__}")  # pragma: no cover


def _clean(values: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether ``values`` (at ``depth``) is stored exactly as parsed: no rule broken, no
    number to normalize. One pass building nothing; :class:`_PlainProperties` does the
    rest when it is not."""
    if depth > MAX_PROPERTY_DEPTH:
        return False
    if type(values) is dict:
        for key in values:
            if not valid_property_key(key) or len(key) > MAX_PROPERTY_KEY_CHARS:
                return False
        items: Any = values.values()
    else:
        items = values
    for value in items:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if not -_EXACT_INT <= value <= _EXACT_INT:
                return False
        elif kind is float:
            if value.is_integer() or not math.isfinite(value):
                return False
        elif kind is dict or kind is list:
            if not _clean(value, depth + 1):
                return False
        else:
            return False  # pragma: no cover - orjson decodes no other types
    return True


def _duplicate_key(raw: bytes) -> str | None:
    """The first key found twice in one object of ``raw`` (valid JSON, nested at most
    :data:`MAX_PROPERTY_DEPTH` levels: the standard library's parser is recursive)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if not found and len({key for key, _ in items}) < len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return {}

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # pragma: no cover - orjson parsed it already
        return None
    return found[0] if found else None


def _json_properties(raw: bytes, path: str,
                     violations: list[FieldViolation]) -> dict[str, Any]:
    """``properties_json`` of the event at ``path`` as stored, by the Struct's rules."""
    json_path = f"{path}.properties_json"
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        violations.append(FieldViolation(
            json_path, f"must be one UTF-8 JSON object (no NaN or Infinity): {exc}"))
        return {}
    if type(values) is not dict:
        violations.append(FieldViolation(
            json_path, f"must be a JSON object, not {_JSON_TYPES[type(values)]}"))
        return {}
    props_path = f"{path}.properties"
    if len(values) > MAX_PROPERTY_KEYS:
        violations.append(FieldViolation(
            props_path, f"at most {MAX_PROPERTY_KEYS} property keys are allowed"))
        return {}
    before = len(violations)
    # Most properties break no rule and hold no number to normalize: stored as parsed.
    clean = _clean(values, 1)
    properties = values if clean else _PlainProperties(violations).object(values, props_path, 1)
    stored = orjson.dumps(properties)
    _check_size(violations, props_path, len(stored))
    # orjson keeps the last of duplicate keys. Bytes equal to a dict's encoding have
    # none, which settles it for every producer that writes compact JSON (the gateway's
    # orjson.dumps) without a second parse.
    if len(violations) == before and stored != raw \
            and (clean or orjson.dumps(values) != raw):
        duplicate = _duplicate_key(raw)
        if duplicate is not None:
            violations.append(FieldViolation(
                json_path, f"has the key {duplicate!r} twice in one object "
                "(JSON object keys must be unique)"))
    return properties


def _client_context(raw: bytes, path: str,
                    violations: list[FieldViolation]) -> str | None:
    """``client_context_json`` as stored: the object's compact JSON text. Its keys are
    the sending library's (``$lib``), so no key rule applies; only the size does."""
    json_path = f"{path}.client_context_json"
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        violations.append(FieldViolation(
            json_path, f"must be one UTF-8 JSON object (no NaN or Infinity): {exc}"))
        return None
    if type(values) is not dict:
        violations.append(FieldViolation(
            json_path, f"must be a JSON object, not {_JSON_TYPES[type(values)]}"))
        return None
    stored = orjson.dumps(values)
    if len(stored) > MAX_PROPERTIES_BYTES:
        violations.append(FieldViolation(
            json_path, f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"))
        return None
    return stored.decode()


def _check_length(
    violations: list[FieldViolation], path: str, value: str, limit: int
) -> None:
    if len(value) > limit:
        violations.append(FieldViolation(path, f"must be at most {limit} characters"))


def _check_json_size(
    violations: list[FieldViolation], path: str, value: dict[str, Any]
) -> None:
    # Measured as compact JSON, the form clients write and reason about. The gRPC
    # message limit (16 MB) bounds the conversion done before this check.
    _check_size(violations, path, len(orjson.dumps(value)))


def _check_size(violations: list[FieldViolation], path: str, size: int) -> None:
    if size > MAX_PROPERTIES_BYTES:
        violations.append(FieldViolation(
            path, f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"))


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
            properties = _json_properties(event.properties_json, path, violations)
    elif event.HasField("properties"):
        props_path = f"{path}.properties"
        if len(event.properties.fields) > MAX_PROPERTY_KEYS:
            violations.append(FieldViolation(
                props_path, f"at most {MAX_PROPERTY_KEYS} property keys are allowed"))
        else:
            properties = _Properties(violations).struct(
                event.properties, props_path, 1)
            _check_json_size(violations, props_path, properties)

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

MAX_BATCH_USERS = 1000
MAX_EMAIL_CHARS = 254
MAX_PHONE_CHARS = 64
MAX_TRAIT_KEYS = 100
# Optional profile strings and their length limits; an empty string clears the field.
PROFILE_LIMITS = {
    "email": MAX_EMAIL_CHARS, "phone": MAX_PHONE_CHARS, "name": 1024, "first_name": 1024,
    "last_name": 1024, "company": 1024, "role": 1024, "plan": 1024, "avatar_url": 2048,
    "stripe_customer_id": MAX_ID_CHARS,
}
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
        if len(user.traits.fields) > MAX_TRAIT_KEYS:
            violations.append(FieldViolation(
                traits_path, f"at most {MAX_TRAIT_KEYS} trait keys are allowed"))
        else:
            converter = _Properties(violations)
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
            _check_json_size(violations, traits_path, change.set_traits)
    return change


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
