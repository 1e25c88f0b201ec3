"""Stored documents -> proto messages (the reverse of :mod:`trackd.server.validation`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from trackd.server.validation import CONTEXT_LIMITS
from trackd.v1 import tracking_pb2, users_pb2
from trackd.wire.limits import PROFILE_LIMITS


def timestamp_message(value: datetime) -> timestamp_pb2.Timestamp:
    """A stored datetime as a proto Timestamp (what every service answers with)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def user_message(doc: dict[str, Any]) -> users_pb2.User:
    user = users_pb2.User(
        external_id=doc["external_id"],
        emails=doc.get("emails", []),
        phones=doc.get("phones", []),
        anonymous_ids=doc.get("anonymous_ids", []),
    )
    for name in PROFILE_LIMITS:
        value = doc.get(name)
        if value:
            setattr(user, name, value)
    if doc.get("signed_up_at"):
        user.signed_up_at.CopyFrom(timestamp_message(doc["signed_up_at"]))
    if doc.get("traits"):
        user.traits.update(doc["traits"])
    user.created_at.CopyFrom(timestamp_message(doc["created_at"]))
    user.updated_at.CopyFrom(timestamp_message(doc["updated_at"]))
    return user


def event_message(doc: dict[str, Any]) -> tracking_pb2.Event:
    event = tracking_pb2.Event(
        event_id=doc["event_id"],
        name=doc["name"],
        external_user_id=doc.get("user_id") or "",
        anonymous_id=doc.get("anonymous_id") or "",
    )
    event.timestamp.CopyFrom(timestamp_message(doc["timestamp"]))
    if doc.get("properties"):
        event.properties.update(doc["properties"])
    context = {name: doc[name] for name in CONTEXT_LIMITS if doc.get(name)}
    if context:
        event.context.CopyFrom(tracking_pb2.EventContext(**context))
    if doc.get("client_context"):
        event.client_context_json = doc["client_context"].encode()
    return event
