"""The OpenAPI document's own paths, the front door and the health and metrics probes.

No dialect owns these: they take no key and answer in the plain error envelope. Built from
:mod:`trackd.gateway.openapi.operation_parts`; :mod:`trackd.gateway.openapi.document` assembles
them.
"""

from __future__ import annotations

from trackd.gateway import health
from trackd.gateway.openapi.operation_parts import build_operation, header_ref, response_for
from trackd.gateway.openapi.schemas import Schema, string

DOCUMENT_PATH = "/openapi.json"
DOCS_PATH = "/docs"


# The envelope of a path no dialect owns (trackd/gateway/errors_middleware.py's render_plain).
PLAIN_ERROR: Schema = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": string(), "message": string()}}}}


def _unkeyed(tag: str, operation_id: str, summary: str, description: str,
             responses: dict[str, Schema]) -> Schema:
    """A GET operation that takes no key (``security: []``)."""
    return {"get": build_operation(tag, operation_id, summary, description, responses,
                                   security=[])}


def _json(status: int, schema: Schema) -> Schema:
    """A JSON answer of these paths: no rate limit applies to them."""
    return response_for(status, schema, rate_limited=False)


def _text(description: str, media_type: str) -> Schema:
    """A non-JSON answer (a page, the metrics): a string of ``media_type``."""
    return {"description": description,
            "headers": {"X-Request-Id": header_ref("X-Request-Id")},
            "content": {media_type: {"schema": {"type": "string"}}}}


def meta_paths() -> dict[str, Schema]:
    return {
        DOCUMENT_PATH: _unkeyed(
            "Documentation", "getOpenApiDocument", "This document", "",
            {"200": _json(200, {"type": "object", "required": ["openapi"]})}),
        DOCS_PATH: _unkeyed(
            "Documentation", "getDocs", "This document, for people", "Swagger UI.",
            {"200": _text("An HTML page", "text/html")}),
        "/": _unkeyed(
            "Documentation", "getFrontDoor", "The front door",
            "A browser (whose `Accept` ranks `text/html` above JSON) gets a page linking "
            "`/console`, `/docs`, `/openapi.json` and `/metrics`; any other client the JSON "
            "404 of an unknown path.",
            {"200": _text("An HTML page", "text/html"), "404": _json(404, PLAIN_ERROR)}),
        **_health_paths(),
    }


def _health_paths() -> dict[str, Schema]:
    check = {"type": "string", "enum": ["ok", "unreachable", "full", "unknown"]}
    readiness = {
        "type": "object", "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object",
                       "required": ["grpc_server", *health.CHECKS],
                       "properties": dict.fromkeys(("grpc_server", *health.CHECKS), check)},
        }}
    return {
        "/healthz": _unkeyed(
            "Operations", "getLiveness", "Liveness", "200 whenever the process can answer.",
            {"200": _json(200, {"type": "object", "required": ["status"],
                                "properties": {"status": {"const": "ok"}}})}),
        "/metrics": _unkeyed(
            "Operations", "getMetrics", "Prometheus metrics",
            "The Prometheus text exposition format (docs/operating/metrics.md): requests by "
            "dialect, route and status, gRPC calls, events by outcome and source, the write "
            "pipeline, the database, the audience index, tracking plan violations and webhook "
            "delivery. No per-project, per-key or per-endpoint label.",
            {"200": _text("The metrics", "text/plain")}),
        "/readyz": _unkeyed(
            "Operations", "getReadiness", "Readiness",
            "200 only when the gRPC server and the database answer and the write queue is "
            "below its bound; else 503 naming the failing check.",
            {"200": _json(200, readiness), "503": _json(503, readiness)}),
    }
