"""Reading request bodies: the size limit, and JSON parsing against a dialect's schema.

Schemas are pydantic ``TypeAdapter``s over TypedDicts, validated straight from the raw
bytes (pydantic-core's JSON parser; no intermediate dict), strictly (a number is not a
string), ignoring unknown fields. Error locations become field paths such as
``events[3].external_user_id``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gateway.grpc_errors import Problem, ProblemError
from gateway.settings import GATEWAY_SETTINGS

T = TypeVar("T")

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
    """The whole (decompressed) body, or a 413 naming the gateway's limit."""
    limit = request.app[GATEWAY_SETTINGS].max_body_bytes
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ProblemError(Problem(
            413, f"request body exceeds the limit of {limit} bytes", reason="PAYLOAD_TOO_LARGE",
        )) from exc


def parse_json(adapter: TypeAdapter[T], raw: bytes, *, invalid_status: int,
               malformed_status: int = 400) -> T:
    """Validate ``raw`` against ``adapter``; malformed JSON and schema errors are Problems."""
    try:
        return adapter.validate_json(raw)
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
        raise ProblemError(Problem(
            invalid_status, f"{path} {describe(first)}", path, "INVALID_ARGUMENT",
        )) from exc
