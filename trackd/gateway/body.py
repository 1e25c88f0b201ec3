"""Reading request bodies: the size limit, Content-Encoding, and JSON parsing against a
dialect's schema.

:func:`read_body` is the one place a body is read. aiohttp's own decompression is off
(:data:`HANDLER_ARGS`), so a compressed body is read raw, at most the limit, and inflated
here with ``zlib.decompressobj(...).decompress(raw, max_length)``: inflating stops one
byte past the limit, so a gzip bomb costs the CPU of inflating the limit, no more. Every
refusal (413, 400 for a body that is not the encoding it claims, 415 for an encoding
trackd does not decode) answers with ``Connection: close`` (see
:mod:`trackd.gateway.errors_middleware`), so the rest of a refused body is never decoded.

A client that goes away while its body is still arriving (the connection reset or
closed mid-body) is :class:`ClientGone`, not a bug: the access log says 499 and nothing
is answered (:mod:`trackd.gateway.errors_middleware`).

Schemas (:class:`~trackd.gateway.decoding.BodySchema`) are TypedDicts, validated
straight from the raw bytes in one compiled pass (msgspec; no intermediate dict), strictly
(a number is not a string), ignoring unknown fields; a body msgspec refuses is judged by
pydantic, whose first error's location becomes a field path such as
``events[3].external_user_id`` and whose kind becomes the message (:func:`describe`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from trackd.gateway.decoding import BodySchema
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import GATEWAY_SETTINGS

T = TypeVar("T")

# Given to web.Application: the body is read raw and decoded by read_body alone; what is
# left of a refused body is discarded (raw, never inflated) for at most a second, so the
# client can read the refusal before the connection closes (aiohttp's default: 10 s).
HANDLER_ARGS: Mapping[str, Any] = {"auto_decompress": False, "lingering_time": 1.0}
# Content-Encoding -> zlib's wbits; "deflate" is zlib-wrapped (RFC 9110), raw deflate is
# told apart by its first byte, as browsers and aiohttp do.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
DECODABLE = ("gzip", "x-gzip", "deflate")

_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "typed_dict_type": "must be an object",
    "model_type": "must be an object",
    "datetime_type": "must be an ISO-8601 date-time",
    "datetime_parsing": "must be an ISO-8601 date-time",
    "datetime_from_date_parsing": "must be an ISO-8601 date-time",
    "timezone_aware": "must carry a timezone offset",
}


class ClientGone(Exception):
    """The client closed its connection before its body was read to the end."""


def field_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def describe(error: Any) -> str:
    kind = error["type"]
    if kind == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    return _MESSAGES.get(kind) or str(error["msg"]).lower()


async def read_body(request: web.Request) -> bytes:
    """The whole decoded body, or a Problem: 413 past the limit (before or after
    inflating), 400 for a body that is not the encoding it claims, 415 for an encoding
    other than identity, gzip and deflate."""
    limit = request.app[GATEWAY_SETTINGS].max_body_bytes
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", *DECODABLE):
        # Refused before a byte of the body is read.
        raise ProblemError(Problem(
            415, "Content-Encoding must be gzip, deflate or identity",
            reason="UNSUPPORTED_ENCODING"))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(limit) from exc
    except ConnectionError as exc:  # reset, or closed: aiohttp's "Connection lost"
        raise ClientGone from exc
    if encoding in ("", "identity"):
        return raw
    return inflate(raw, encoding, limit)


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded from gzip or deflate, inflating at most ``limit`` + 1 bytes."""
    if encoding == "deflate" and not _zlib_wrapped(raw):
        wbits = -zlib.MAX_WBITS
    else:
        wbits = _GZIP_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        body = decoder.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise _not_encoded(encoding) from exc
    if len(body) > limit:
        raise _too_large(limit)
    if not decoder.eof or decoder.unused_data:
        raise _not_encoded(encoding)  # truncated, or bytes after the end of the stream
    return body


def _zlib_wrapped(raw: bytes) -> bool:
    return len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0


def _too_large(limit: int) -> ProblemError:
    return ProblemError(Problem(
        413, f"request body exceeds the limit of {limit} bytes", reason="PAYLOAD_TOO_LARGE"))


def _not_encoded(encoding: str) -> ProblemError:
    return ProblemError(Problem(
        400, f"request body is not valid {encoding} (it says Content-Encoding: {encoding})",
        reason="MALFORMED_BODY"))


def try_json(schema: BodySchema[T], raw: bytes) -> T | None:
    """``raw`` validated against ``schema``, or None when it does not fit: for a dialect
    whose key is in the body, which looks for it before judging the body, so that a
    body that fits is decoded once (:func:`parse_json` then says what is wrong)."""
    try:
        return schema.validate_json(raw)
    except ValidationError:
        return None


def parse_json(schema: BodySchema[T], raw: bytes, *, invalid_status: int,
               malformed_status: int = 400) -> T:
    """Validate ``raw`` against ``schema``; malformed JSON and schema errors are Problems."""
    try:
        return schema.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "json_type", "recursion_loop"):
            raise ProblemError(Problem(
                malformed_status, "request body is not valid JSON", reason="MALFORMED_BODY",
            )) from exc
        path = field_path(first["loc"])
        if not path:
            raise ProblemError(Problem(
                invalid_status, f"request body {describe(first)}", reason="INVALID_ARGUMENT",
            )) from exc
        raise ProblemError(Problem.invalid(invalid_status, path, describe(first))) from exc
