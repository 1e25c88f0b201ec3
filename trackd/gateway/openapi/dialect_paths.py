"""The four REST dialects' operations in the OpenAPI document.

VibeFollow, Flywheel, Databuddy and Cueflow (with its audiences), each route with its body
schema, every status it answers with in its dialect's envelope, and its credentials. The
path both VibeFollow and Cueflow serve, ``POST /api/v1/events``, is one operation with a
``oneOf`` body and both dialects' responses. Built from
:mod:`trackd.gateway.openapi.operation_parts`; :mod:`trackd.gateway.openapi.document` assembles
them.
"""

from __future__ import annotations

from collections.abc import Iterable

from trackd.gateway.dialects import cueflow, databuddy, flywheel, vibefollow
from trackd.gateway.openapi import limits
from trackd.gateway.openapi.operation_parts import (
    COMMON_ERRORS,
    CONTACT_ID,
    IDEMPOTENCY_KEY,
    PLAN_VIOLATIONS,
    PREFLIGHT_HEADER_SCHEMAS,
    STATUS_TEXT,
    build_operation,
    cueflow_error,
    cueflow_error_responses,
    error_responses,
    flywheel_error,
    header_ref,
    rate_limit_note,
    request_body,
    response_for,
)
from trackd.gateway.openapi.schemas import Schema, ref, string
from trackd.gateway.settings import GatewaySettings

VIBEFOLLOW_SEED_EVENT = {"external_user_id": "usr_42", "name": "user_signed_up",
                         "properties": {"plan": "trial", "source": "organic"}}
CUEFLOW_SEED_EVENT = {"externalId": "user-123", "eventKey": "purchase_completed",
                      "properties": {"amount": 99.99, "currency": "USD", "plan": "pro",
                                     "method": "credit_card"}}


def _vibefollow_errors(statuses: Iterable[int] = (*COMMON_ERRORS, 422)) -> dict[str, Schema]:
    return error_responses("VibeFollowError", statuses)


def vibefollow_paths(settings: GatewaySettings) -> dict[str, Schema]:
    note = rate_limit_note(vibefollow.VIBEFOLLOW, settings)
    accepted = {"202": response_for(202, ref("VibeFollowAccepted"), example=vibefollow.ACCEPTED,
                                 headers=PLAN_VIOLATIONS)}
    batch_example = {"events": [
        {"external_user_id": "usr_42", "name": "user_signed_up",
         "properties": {"plan": "trial"}},
        {"external_user_id": "usr_42", "name": "trial_started",
         "properties": {"trialDays": 14}}]}
    return {
        "/api/v1/events/batch": {"post": build_operation(
            "VibeFollow", "vibefollowBatchTrack", "Track a batch of events",
            f"1 to {limits.MAX_BATCH_EVENTS} events, all or nothing: one invalid event "
            "rejects the batch with 422 naming it (`events[3].external_user_id`). " + note,
            {**accepted, **_vibefollow_errors()},
            body=request_body(ref("VibeFollowBatch"), {"seed": batch_example}),
            parameters=[IDEMPOTENCY_KEY])},
        "/api/v1/users": {"post": build_operation(
            "VibeFollow", "vibefollowUpsertUser", "Create or update a user",
            "Upserts one user by `external_user_id` (scope `users:write`); events sent for "
            "the user before are already in its history. " + note,
            {**accepted, **_vibefollow_errors()},
            body=request_body(ref("VibeFollowUser")), parameters=[IDEMPOTENCY_KEY])},
        "/api/v1/users/bulk": {"post": build_operation(
            "VibeFollow", "vibefollowBulkUpsertUsers", "Create or update users in bulk",
            f"1 to {limits.MAX_BATCH_USERS} users (scope `users:write`); unlike the events "
            "batch the valid ones are stored and the invalid ones reported by index. " + note,
            {"200": response_for(200, ref("VibeFollowBulkResult")), **_vibefollow_errors()},
            body=request_body(ref("VibeFollowUsers"), {"readme": {"users": [
                {"external_user_id": "usr_42", "traits": {"plan": "pro"}},
                {"email": "nobody@example.com"}]}}),
            parameters=[IDEMPOTENCY_KEY])},
    }


def shared_events_path(settings: GatewaySettings) -> dict[str, Schema]:
    both = {"oneOf": [ref("VibeFollowError"), ref("CueflowError")]}
    responses: dict[str, Schema] = {
        "201": response_for(201, ref("CueflowTracked"), "Cueflow: the event, stored",
                         headers=PLAN_VIOLATIONS),
        "202": response_for(202, ref("VibeFollowAccepted"), "VibeFollow: accepted and stored",
                         example=vibefollow.ACCEPTED, headers=PLAN_VIOLATIONS),
        "404": response_for(404, cueflow_error(404), "Cueflow: no such contact (nothing stored)"),
        "422": response_for(422, ref("VibeFollowError"),
                         "VibeFollow: validation failed, or a body of neither shape"),
    }
    for status in COMMON_ERRORS:
        responses[str(status)] = response_for(status, both, STATUS_TEXT[status] + " (in the "
                                           "envelope of the dialect the body belongs to)")
    return {"/api/v1/events": {"post": build_operation(
        "VibeFollow", "trackEvent", "Track an event (VibeFollow or Cueflow)",
        "VibeFollow's and Cueflow's path: the body's keys say whose it is "
        "(`external_user_id`/`name`: VibeFollow, 202; `externalId`/`eventKey`: Cueflow, 201, "
        "for a contact that exists), and every answer, errors included, comes in that "
        "vendor's envelope; a body of neither shape gets VibeFollow's 422. "
        f"VibeFollow: {rate_limit_note(vibefollow.VIBEFOLLOW, settings)} "
        f"Cueflow: {rate_limit_note(cueflow.CUEFLOW, settings)} "
        "`Idempotency-Key` applies to VibeFollow events.",
        responses,
        body=request_body({"oneOf": [ref("VibeFollowEvent"), ref("CueflowEvent")]},
                   {"vibefollow": VIBEFOLLOW_SEED_EVENT, "cueflow": CUEFLOW_SEED_EVENT}),
        parameters=[IDEMPOTENCY_KEY]) | {"tags": ["VibeFollow", "Cueflow"]}}}


def flywheel_paths(settings: GatewaySettings) -> dict[str, Schema]:
    examples = {
        "user_signup": {"event": {"event": "user_signup", "user_id": "user123", "properties": {
            "source": "website", "plan": "premium", "utm_source": "google_ads",
            "utm_campaign": "summer2024"}}},
        "product_purchased": {"event": {
            "event": "product_purchased", "user_id": "user456",
            "timestamp": "2024-01-15T10:30:00Z", "properties": {
                "product_name": "Premium Plan", "price": 99.99, "currency": "USD",
                "payment_method": "credit_card", "order_id": "ord_123456"}}},
        "anonymous_event": {"event": {"event": "page_viewed", "anonymous_id": "anon_789",
                                      "properties": {"page": "/pricing",
                                                     "referrer": "https://google.com",
                                                     "device_type": "mobile"}}},
        "identify_user": {"event": {
            "event": "user_updated_profile", "user_id": "user456", "identify": True,
            "properties": {"email": "john.doe@company.com", "first_name": "John",
                           "last_name": "Doe", "phone": "+1-555-0123",
                           "company": "Tech Corp", "plan_type": "premium"}}},
    }
    responses = {"200": response_for(200, ref("FlywheelSuccess"), example=flywheel.SUCCESS,
                                  headers=PLAN_VIOLATIONS),
                 **{str(s): response_for(s, flywheel_error(s)) for s in COMMON_ERRORS}}
    return {"/v1/events": {"post": build_operation(
        "Flywheel", "flywheelTrackEvent", "Track a user event",
        "One event; without `user_id` it is anonymous (keyed by `anonymous_id`, generated "
        "when absent); a repeated `event_id` is stored once. With `identify: true` the "
        "profile is updated from the properties first (scope `users:write`). "
        + rate_limit_note(flywheel.FLYWHEEL, settings),
        responses, security=[{"flywheelKey": [], "flywheelAuthType": []}],
        body=request_body(ref("FlywheelBody"), examples))}}


def databuddy_paths(settings: GatewaySettings) -> dict[str, Schema]:
    cors = {"Vary": header_ref("Vary"),
            "Access-Control-Allow-Origin": header_ref("Access-Control-Allow-Origin")}
    website_id: Schema = {
        "name": "website_id", "in": "query", "required": False,
        "schema": string(format="uuid"),
        "description": "A website's id, instead of a key (browser tracking).",
        "example": "550e8400-e29b-41d4-a716-446655440000"}
    # Sent empty, it is as if absent (a server-side call).
    origin: Schema = {"name": "Origin", "in": "header", "required": False,
                      "schema": string(pattern=r"^[!-~]*$"),
                      "example": "https://shop.example.com"}
    keyed: list[Schema] = [{"bearer": []}, {"apiKeyHeader": []}]
    note = rate_limit_note(databuddy.DATABUDDY, settings)
    statuses = (*COMMON_ERRORS, 404)
    preflight_responses = {
        "204": response_for(204, None, "The origin is one of the website's: the CORS headers",
                         headers={**cors, **PREFLIGHT_HEADER_SCHEMAS,
                                  "Access-Control-Allow-Origin": {
                                      "required": True, "schema": {"type": "string"}}}),
        **error_responses("DatabuddyError", (403, 404, 429, 500, 503), headers=cors),
    }
    preflight_parameters = [website_id | {"required": True}, origin | {"required": True}]
    preflight = build_operation(
        "Databuddy", "", "CORS preflight",
        "Answered only for a `website_id` whose origins include the page's `Origin`; "
        "else 403 `Origin not authorized`.",
        preflight_responses, security=[], parameters=preflight_parameters)
    return {
        "/track": {
            "post": build_operation(
                "Databuddy", "databuddyTrack", "Track events",
                "One event or an array of them, all or nothing; `count` is the events "
                "newly stored (a repeated `eventId` is accepted, not counted). A key needs "
                "scope `track:events`; a `website_id` request from a browser must come from "
                "one of the website's origins. " + note,
                {"200": response_for(200, ref("DatabuddyTracked"),
                                  headers={**cors, **PLAN_VIOLATIONS}),
                 **error_responses("DatabuddyError", statuses, headers=cors)},
                security=[*keyed, {"websiteId": []}],
                body=request_body(ref("DatabuddyTrack"), {
                    "single_event": {
                        "name": "button_clicked", "namespace": "ui",
                        "properties": {"button_id": "signup", "page": "/pricing"},
                        "anonymousId": "user-123", "sessionId": "session-456"},
                    "multiple_events": [
                        {"name": "page_viewed", "properties": {"path": "/dashboard"}},
                        {"name": "feature_used", "namespace": "product",
                         "properties": {"feature": "export", "format": "csv"}}],
                    "with_website_id": {"name": "video_played", "properties": {
                        "video_id": "intro-2024", "duration": 120}},
                }, text_plain=True),
                parameters=[website_id, origin]),
            "options": preflight | {"operationId": "databuddyTrackPreflight"},
        },
        "/identify": {
            "post": build_operation(
                "Databuddy", "databuddyIdentify", "Identify a profile",
                "Upserts the profile with its traits and links the anonymous id to it, so "
                "that id's past and future events are the profile's. Needs a key with "
                "`track:events` for that website. " + note,
                {"200": response_for(200, ref("DatabuddyIdentified"), headers=cors),
                 **error_responses("DatabuddyError", statuses, headers=cors)},
                security=keyed, body=request_body(ref("DatabuddyIdentify"), text_plain=True),
                parameters=[website_id, origin]),
            "options": preflight | {"operationId": "databuddyIdentifyPreflight"},
        },
    }


def cueflow_paths(settings: GatewaySettings) -> dict[str, Schema]:
    note = rate_limit_note(cueflow.CUEFLOW, settings)
    contact = ref("CueflowContact")
    create_example = {"externalId": "user-123", "email": "ada@example.com", "plan": "pro"}
    return {
        "/api/v1/contacts": {"post": build_operation(
            "Cueflow", "cueflowUpsertContact", "Create or update a contact",
            "201 when created, 200 when it existed (scope `users:write`). " + note,
            {"200": response_for(200, contact, "Updated"),
             "201": response_for(201, contact, "Created"),
             **cueflow_error_responses(COMMON_ERRORS)},
            body=request_body(ref("CueflowNewContact"), {"seed": create_example}))},
        "/api/v1/contacts/{externalId}": {
            "parameters": [CONTACT_ID],
            "get": build_operation(
                "Cueflow", "cueflowGetContact", "Get a contact",
                "Scope `users:read`. " + note,
                {"200": response_for(200, contact), **cueflow_error_responses(
                    (400, 401, 403, 404, 429, 500, 503))}),
            "patch": build_operation(
                "Cueflow", "cueflowUpdateContact", "Update a contact",
                "Changes the fields present; `null` or `\"\"` clears one (scope "
                "`users:write`). " + note,
                {"200": response_for(200, contact),
                 **cueflow_error_responses((*COMMON_ERRORS, 404))},
                body=request_body(ref("CueflowContactChange"), {"plan": {"plan": "enterprise"}})),
            "delete": build_operation(
                "Cueflow", "cueflowDeleteContact", "Delete a contact and its events",
                "By external id, else by email (`externalId` may be either). Scope "
                "`users:write`. " + note,
                {"200": response_for(200, ref("CueflowDeleted")),
                 **cueflow_error_responses((*COMMON_ERRORS, 404))}),
        },
        "/api/v1/audiences/evaluate": {"post": build_operation(
            "Audiences", "evaluateAudience", "Evaluate an audience",
            "The contacts whose events and properties match, a page at a time (scope "
            "`users:read`). " + note,
            {"200": response_for(200, ref("AudiencePage")),
             **cueflow_error_responses(COMMON_ERRORS)},
            body=request_body(ref("AudienceEvaluate"), {"seed": {
                "groups": [{"rules": [
                    {"event": "advanced_export_viewed", "op": "has_done"},
                    {"event": "advanced_export_used", "op": "has_not_done"}]}],
                "limit": 100}}))},
        "/api/v1/contacts/{externalId}/match": {
            "parameters": [CONTACT_ID],
            "post": build_operation(
                "Audiences", "matchContact", "Whether a contact is in an audience",
                "Scope `users:read`. " + note,
                {"200": response_for(200, ref("AudienceMatch")),
                 **cueflow_error_responses((*COMMON_ERRORS, 404))},
                body=request_body(ref("Audience"), {"readme": {"groups": [
                    {"rules": [{"event": "purchase_completed", "op": "count_greater_than",
                                "count": 2},
                               {"property": "plan", "op": "equals", "value": "pro"}]},
                    {"rules": [{"event": "page_viewed", "op": "last_done_within",
                                "within": "7d"}]}]}}))},
    }


