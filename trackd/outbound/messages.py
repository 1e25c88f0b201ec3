"""Webhook messages: their bodies, their ids and their signatures (Standard Webhooks 1.0).

A message is made once from stored events and never changes: its id is derived from the
endpoint and its events' ids, and its body from the stored events (its top-level
``timestamp`` is when its last event was stored), so the same events make the same
``webhook-id`` and the same bytes. With batch size 1 a message made again (after a crash,
or by a replay from a time) is therefore the same message. A batch is the consecutive
events of one read (a change-stream answer live, a page of a replay): made again, it may
group them differently and so get another id; each event keeps its own ``id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson

from trackd.storage.deliveries import Message

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EVENT_TRACKED = "event.tracked"
EVENT_BATCH = "event.batch"


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def iso(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds: ``2026-12-07T10:00:00.000Z``."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def user_key(doc: dict[str, Any]) -> str:
    """Whose event it is, for ordering: the user id, else the anonymous id."""
    if doc.get("user_id"):
        return "u:" + str(doc["user_id"])
    return "a:" + str(doc.get("anonymous_id") or "")


def event_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored event as a webhook body shows it."""
    return {
        "id": doc["event_id"], "project": doc["project_id"], "name": doc["name"],
        "user_id": doc.get("user_id") or None, "anonymous_id": doc.get("anonymous_id") or None,
        "timestamp": iso(doc["timestamp"]), "received_at": iso(doc["received_at"]),
        "source": doc.get("via") or "grpc", "properties": doc.get("properties") or {},
    }


def message_id(endpoint_id: str, docs: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256(endpoint_id.encode())
    for doc in docs:
        digest.update(b"\0" + str(doc["event_id"]).encode())
    return "msg_" + base64.b32encode(digest.digest()[:20]).decode().lower()


def body(docs: list[dict[str, Any]], batch: bool) -> bytes:
    made = iso(docs[-1]["received_at"])
    if not batch:
        return orjson.dumps({"type": EVENT_TRACKED, "timestamp": made,
                             "data": event_json(docs[0])})
    return orjson.dumps({"type": EVENT_BATCH, "timestamp": made,
                         "data": {"events": [event_json(doc) for doc in docs]}})


def signature(secrets_: list[str], msg_id: str, timestamp: int, payload: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    out = []
    for secret in secrets_:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
        mac = hmac.new(key, signed, hashlib.sha256).digest()
        out.append("v1," + base64.b64encode(mac).decode())
    return " ".join(out)


def make_messages(endpoint_id: str, batch_size: int, docs: list[dict[str, Any]]) -> list[Message]:
    """``docs`` (stored events in order) as the endpoint's messages: one event each, or
    up to ``batch_size`` consecutive events."""
    groups = [docs[i:i + batch_size] for i in range(0, len(docs), batch_size)]
    return [Message(msg_id=message_id(endpoint_id, group), body=body(group, batch_size > 1),
                    keys=sorted({user_key(doc) for doc in group}), events=len(group),
                    oldest_at=group[0]["received_at"])
            for group in groups]
