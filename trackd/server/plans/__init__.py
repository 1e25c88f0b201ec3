"""Tracking plans: what a project's events must look like, and the verdict on each event.

:mod:`trackd.server.plans.rules` checks a plan document and compiles it (one JSON Schema
validator per event per version), and judges an event's name and properties against
it; :mod:`trackd.server.plans.book` keeps each project's current compiled plan, dropped
fleet-wide by the tracking_plans change stream; :mod:`trackd.server.plans.verdict` applies a
plan to a request's event documents (observe: mark them; block: quarantine and refuse);
:mod:`trackd.server.plans.manage` sets plans, reports violations and releases or drops
quarantined events, for the TrackingPlanService and the CLI alike.

May import: the standard library, jsonschema_rs, orjson, the server's errors, metrics,
observability and fleet-wide cache (:mod:`trackd.server.fleet_cache`), storage and the generated
API. Never the gateway or pymongo.
"""
