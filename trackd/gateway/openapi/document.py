"""The gateway's OpenAPI 3.1 document, built from the dialect modules' own constants.

Every REST route is one operation here: its body schema (with its limits, see
:mod:`trackd.gateway.openapi.schemas`), every status it can answer with the body of that
dialect's envelope, its headers and the credentials its dialect takes. The path shared
by VibeFollow and Cueflow, ``POST /api/v1/events``, is one operation with a ``oneOf``
body and both dialects' responses. The operations are built in
:mod:`trackd.gateway.openapi.dialect_paths`, :mod:`trackd.gateway.openapi.meta_paths`,
:mod:`trackd.gateway.openapi.sdk_doors` and :mod:`trackd.gateway.openapi.console_paths`; this
assembles them with the components. ``tests/gateway/test_openapi.py`` fails when a route
the app serves is missing here, or this lists one the app does not serve.
"""

from __future__ import annotations

from typing import Any

from trackd.gateway.openapi import (
    cueflow_schemas,
    databuddy_schemas,
    flywheel_schemas,
    sdk_doors,
    vibefollow_schemas,
)
from trackd.gateway.openapi.console_paths import console_paths
from trackd.gateway.openapi.dialect_paths import (
    cueflow_paths,
    databuddy_paths,
    flywheel_paths,
    shared_events_path,
    vibefollow_paths,
)
from trackd.gateway.openapi.meta_paths import meta_paths
from trackd.gateway.openapi.operation_parts import HEADERS, SECURITY_SCHEMES
from trackd.gateway.openapi.schemas import JSON_VALUE_NAME, Schema, json_value
from trackd.gateway.settings import GatewaySettings

OPENAPI_VERSION = "3.1.0"


def component_schemas() -> dict[str, Schema]:
    """Every dialect's request bodies and envelopes, by name."""
    return {**vibefollow_schemas.schemas(), **flywheel_schemas.schemas(),
            **databuddy_schemas.schemas(), **cueflow_schemas.schemas(),
            JSON_VALUE_NAME: json_value()}


def build_document(settings: GatewaySettings | None = None) -> dict[str, Any]:
    """The document for a gateway with ``settings`` (its body size and rate limits)."""
    settings = settings or GatewaySettings()
    paths = {**shared_events_path(settings), **vibefollow_paths(settings),
             **flywheel_paths(settings), **databuddy_paths(settings),
             **cueflow_paths(settings), **sdk_doors.paths(settings), **meta_paths(),
             **console_paths()}
    sdk_doors.share_track(paths)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "trackd REST gateway",
            "version": "1",
            "summary": "Four tracking vendors' JSON APIs (VibeFollow, Flywheel, Databuddy, "
                       "Cueflow) and audiences, over one store.",
            "description": (
                "A client written for one of these vendors works by changing only its base "
                "URL and key. Every error comes in the envelope of the vendor the route "
                f"belongs to. Every body is at most {settings.max_body_bytes} bytes after "
                "decompression (`TRACKD_MAX_BODY_BYTES`), else 413; `Content-Encoding: "
                "gzip` and `deflate` are accepted. Unknown body fields are ignored."),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "VibeFollow", "description": "`/api/v1`: events, batches, users."},
            {"name": "Flywheel", "description": "`POST /v1/events`."},
            {"name": "Databuddy", "description": "`/track`, `/identify`, browser tracking."},
            {"name": "Cueflow", "description": "Contacts and events."},
            *sdk_doors.TAGS,
            {"name": "Audiences", "description": "Targeting by what contacts did, "
                                                 "Cueflow-style."},
            {"name": "Documentation", "description": "This document."},
            {"name": "Console", "description": "The console page and the streams it reads "
                                               "(docs/console.md)."},
            {"name": "Operations", "description": "Health probes for load balancers and "
                                                   "orchestrators; no key needed."},
        ],
        "paths": paths,
        "components": {
            "schemas": {**component_schemas(), **sdk_doors.schemas()},
            "headers": HEADERS,
            "securitySchemes": {**SECURITY_SCHEMES, **sdk_doors.SECURITY_SCHEMES},
        },
    }
