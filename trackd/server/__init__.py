"""The gRPC server: every rule of the product lives here.

What lives here: the server factory (:mod:`trackd.server.app`), one servicer per proto service
(:mod:`trackd.server.services`), authentication and scopes (:mod:`trackd.server.auth`), websites and
their origins (:mod:`trackd.server.websites`), request validation
(:mod:`trackd.server.validation`; properties and traits read, :mod:`trackd.server.properties`),
stored documents back to messages (:mod:`trackd.server.messages`), idempotency
(:mod:`trackd.server.idempotency`), rate limits shared by every instance
(:mod:`trackd.server.ratelimit`; what a limit is, :mod:`trackd.server.rate_limit_policy`), the
group-commit write pipeline (:mod:`trackd.server.pipeline`),
audiences (:mod:`trackd.server.audiences`: rules, parsing, evaluation and the in-memory index
kept by the change feed), the one mapping from domain exceptions to ``grpc.Status``
(:mod:`trackd.server.errors`), and what wraps every call: the interceptors' base
(:mod:`trackd.server.interceptors`), metrics (:mod:`trackd.server.metrics`), the access log
(:mod:`trackd.server.observability`), health and the gate that fails calls fast while the
database is down (:mod:`trackd.server.health`); :mod:`trackd.server.tasks` stops background tasks;
the console's decisions and per-minute counts, recorded off the acknowledgement path
(:mod:`trackd.server.decisions`); :mod:`trackd.server.fleet_cache` is the shape of the caches a
change stream empties fleet-wide (API keys, tracking plans).

May import: the generated ``trackd.v1`` code, :mod:`trackd.storage`, :mod:`trackd.wire` (the
limits it shares with the gateway), grpc and google.rpc. Never imports :mod:`trackd.gateway`
or the driver (pymongo) directly (checked by ``lint-imports``).
"""
