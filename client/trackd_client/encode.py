"""Python values -> trackd.v1 messages, rejecting locally what the server would reject.

Everything checked here is a rule the server enforces too (see :mod:`trackd_client.limits`);
checking it at ``track()`` turns a batch the server would refuse as a whole into a
``ValueError`` or ``TypeError`` naming the field, raised to the caller that made it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
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
    if type(key) is str and 0 < len(key) <= limits.MAX_PROPERTY_KEY_CHARS \
            and key[0] != "$" and "\x00" not in key and not (trait and "." in key):
        return key  # the common case, checked in one go
    if not isinstance(key, str):
        raise TypeError(f"{path}: keys must be str, not {type(key).__name__} ({key!r})")
    if not key or key.startswith("$") or "\x00" in key or (trait and "." in key):
        what = "'.', '$' or NUL" if trait else "a leading '$' or NUL"
        raise ValueError(f"{path}.{key}: keys must be non-empty and contain no {what}")
    raise ValueError(f"{path}: key {key[:40]!r}... is longer than "
                     f"{limits.MAX_PROPERTY_KEY_CHARS} characters")


def _join(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def _plain(parent: str, key: str | int, value: object, depth: int) -> object:
    """``value`` (at ``key`` of ``parent``, ``depth`` levels deep) as plain JSON values
    (dicts and lists); raises unless it fits a Struct. The path is built only when
    needed: this runs for every property of every event."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        if not -_EXACT_INT <= value <= _EXACT_INT:  # type: ignore[operator]
            raise ValueError(f"{_join(parent, key)}: integers must be within ±2**53 (they "
                             f"travel as doubles), got {value}")
        return value
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"{_join(parent, key)}: numbers must be finite, got {value}")
        return value
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (Mapping, list, tuple)):
        path = _join(parent, key)
        if depth + 1 > limits.MAX_PROPERTY_DEPTH:
            raise ValueError(f"{path}: properties may nest at most "
                             f"{limits.MAX_PROPERTY_DEPTH} levels deep")
        if isinstance(value, Mapping):
            return {k: _plain(path, k, v, depth + 1)
                    for k, v in ((_check_key(path, k, trait=False), v)
                                 for k, v in value.items())}
        return [_plain(path, index, item, depth + 1) for index, item in enumerate(value)]
    raise TypeError(f"{_join(parent, key)}: {type(value).__name__} cannot be sent (use str, "
                    "int, float, bool, None, a dict or a list)")


# Compact JSON takes at most about 6 bytes per byte of a Struct's encoding (a control
# character escaped as \u001f); below this encoded size the JSON cannot reach the limit,
# and is not measured.
_SURELY_SMALL = limits.MAX_PROPERTIES_BYTES // 8


def _struct(path: str, values: object, max_keys: int, *, trait: bool) -> struct_pb2.Struct:
    if not isinstance(values, Mapping):
        raise TypeError(f"{path}: must be a dict, not {type(values).__name__}")
    if len(values) > max_keys:
        raise ValueError(f"{path}: at most {max_keys} keys are allowed, got {len(values)}")
    plain: dict[str, Any] = {key: _plain(path, key, value, 1)
                             for key, value in ((_check_key(path, k, trait=trait), v)
                                                for k, v in values.items())}
    struct = struct_pb2.Struct()
    struct.update(plain)
    if struct.ByteSize() > _SURELY_SMALL:
        size = len(json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode())
        if size > limits.MAX_PROPERTIES_BYTES:
            raise ValueError(f"{path}: must be at most {limits.MAX_PROPERTIES_BYTES} bytes "
                             f"as JSON, got {size}")
    return struct


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    if value is None:
        stamp.FromNanoseconds(time.time_ns())
        return stamp
    if not isinstance(value, datetime):
        raise TypeError(f"timestamp: must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp: must be timezone-aware (datetime.now(UTC), not "
                         "datetime.now())")
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
