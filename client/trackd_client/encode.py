"""Python values -> trackd.v1 messages, rejecting locally what the server would reject.

Everything checked here is a rule the server enforces too (see :mod:`trackd_client.limits`);
checking it at ``track()`` turns a batch the server would refuse as a whole into a
``ValueError`` or ``TypeError`` naming the field, raised to the caller that made it.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from trackd.v1 import tracking_pb2, users_pb2
from trackd_client import limits

# Struct numbers are doubles: integers beyond 2**53 would be stored as another number.
_EXACT_INT = 2**53


def _check_id(field: str, value: object, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise ValueError(f"{field}: is required")
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{field}: must be a str, not {type(value).__name__}")
    if required and not value:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > limits.MAX_ID_CHARS:
        raise ValueError(f"{field}: must be at most {limits.MAX_ID_CHARS} characters")
    return value


def _check_key(path: str, key: object, *, trait: bool) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{path}: keys must be str, not {type(key).__name__} ({key!r})")
    if not key or key.startswith("$") or "\x00" in key or (trait and "." in key):
        what = "'.', '$' or NUL" if trait else "a leading '$' or NUL"
        raise ValueError(f"{path}.{key}: keys must be non-empty and contain no {what}")
    if len(key) > limits.MAX_PROPERTY_KEY_CHARS:
        raise ValueError(f"{path}: key {key[:40]!r}... is longer than "
                         f"{limits.MAX_PROPERTY_KEY_CHARS} characters")
    return key


def _plain(path: str, value: object, depth: int) -> object:
    """``value`` (found at ``path``, ``depth`` levels deep) as plain JSON values (dicts and
    lists); raises unless it fits a Struct."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_EXACT_INT <= value <= _EXACT_INT:
            raise ValueError(f"{path}: integers must be within ±2**53 (they travel as "
                             f"doubles), got {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite, got {value}")
        return value
    if isinstance(value, (Mapping, list, tuple)) and depth + 1 > limits.MAX_PROPERTY_DEPTH:
        raise ValueError(f"{path}: properties may nest at most "
                         f"{limits.MAX_PROPERTY_DEPTH} levels deep")
    if isinstance(value, Mapping):
        return {key: _plain(f"{path}.{key}", item, depth + 1)
                for key, item in ((_check_key(path, k, trait=False), v)
                                  for k, v in value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(f"{path}[{index}]", item, depth + 1)
                for index, item in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} cannot be sent (use str, int, float, "
                    "bool, None, a dict or a list)")


def _struct(path: str, values: object, max_keys: int, *, trait: bool) -> struct_pb2.Struct:
    if not isinstance(values, Mapping):
        raise TypeError(f"{path}: must be a dict, not {type(values).__name__}")
    if len(values) > max_keys:
        raise ValueError(f"{path}: at most {max_keys} keys are allowed, got {len(values)}")
    plain: dict[str, Any] = {key: _plain(f"{path}.{key}", value, 1)
             for key, value in ((_check_key(path, k, trait=trait), v)
                                for k, v in values.items())}
    size = len(json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.MAX_PROPERTIES_BYTES:
        raise ValueError(f"{path}: must be at most {limits.MAX_PROPERTIES_BYTES} bytes as "
                         f"JSON, got {size}")
    struct = struct_pb2.Struct()
    struct.update(plain)
    return struct


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    if value is None:
        value = datetime.now(UTC)
    elif not isinstance(value, datetime):
        raise TypeError(f"timestamp: must be a datetime, not {type(value).__name__}")
    elif value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp: must be timezone-aware (datetime.now(UTC), not "
                         "datetime.now())")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def event(
    name: str,
    user_id: str | None,
    anonymous_id: str | None,
    properties: Mapping[str, Any] | None,
    timestamp: datetime | None,
    event_id: str | None,
) -> tracking_pb2.Event:
    """The event to queue, with its id (a new UUID unless given) and time (now unless
    given) fixed here, so that every retry of it is the same event."""
    if not isinstance(name, str):
        raise TypeError(f"name: must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("name: must not be empty")
    if len(name) > limits.MAX_NAME_CHARS:
        raise ValueError(f"name: must be at most {limits.MAX_NAME_CHARS} characters")
    user = _check_id("user_id", user_id)
    anonymous = _check_id("anonymous_id", anonymous_id)
    if not user and not anonymous:
        raise ValueError("user_id: is required when anonymous_id is not given")
    ident = _check_id("event_id", event_id, required=True) if event_id is not None \
        else str(uuid.uuid4())
    message = tracking_pb2.Event(event_id=ident, name=name, external_user_id=user,
                                 anonymous_id=anonymous, timestamp=_timestamp(timestamp))
    if properties:
        message.properties.CopyFrom(
            _struct("properties", properties, limits.MAX_PROPERTY_KEYS, trait=False))
    return message


def user(user_id: str, traits: Mapping[str, Any] | None,
         anonymous_ids: Sequence[str] = ()) -> users_pb2.User:
    """The user upsert to queue: traits are merged into the stored ones (``None`` removes
    a trait), anonymous ids are linked to the user."""
    message = users_pb2.User(external_id=_check_id("user_id", user_id, required=True))
    if isinstance(anonymous_ids, str):
        raise TypeError("anonymous_ids: must be a list of str, not a str")
    for index, anonymous_id in enumerate(anonymous_ids):
        message.anonymous_ids.append(
            _check_id(f"anonymous_ids[{index}]", anonymous_id, required=True))
    if traits:
        message.traits.CopyFrom(_struct("traits", traits, limits.MAX_TRAIT_KEYS, trait=True))
    return message
