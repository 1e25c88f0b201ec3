"""The gRPC server: every rule of the product lives here.

What lives here: the server factory (:mod:`server.app`), one servicer per proto service
(:mod:`server.services`), authentication and scopes (:mod:`server.auth`), websites and
their origins (:mod:`server.websites`), request validation
(:mod:`server.validation`; properties and traits read, :mod:`server.properties`), stored
documents back to messages (:mod:`server.messages`), idempotency
(:mod:`server.idempotency`), rate limits shared by every instance
(:mod:`server.ratelimit`; what a limit is, :mod:`server.rate_limit_policy`), the
group-commit write pipeline (:mod:`server.pipeline`),
audiences (:mod:`server.audiences`: rules, parsing, evaluation and the in-memory index
kept by the change feed), the one mapping from domain exceptions to ``grpc.Status``
(:mod:`server.errors`), and what wraps every call: the interceptors' base
(:mod:`server.interceptors`), metrics (:mod:`server.metrics`), the access log
(:mod:`server.observability`), health and the gate that fails calls fast while the
database is down (:mod:`server.health`); :mod:`server.tasks` stops background tasks;
the console's decisions and per-minute counts, recorded off the acknowledgement path
(:mod:`server.decisions`); :mod:`server.fleet_cache` is the shape of the caches a change
stream empties fleet-wide (API keys, tracking plans).

May import: the generated ``trackd.v1`` code, :mod:`storage`, :mod:`trackd_wire` (the
limits it shares with the gateway), grpc and google.rpc. Never imports :mod:`gateway`
or the driver (pymongo) directly (checked by ``lint-imports``).
"""
