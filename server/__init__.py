"""The gRPC server: every rule of the product lives here.

What lives here: the server factory (:mod:`server.app`), one servicer per proto service
(:mod:`server.services`), authentication and scopes (:mod:`server.auth`), request
validation and limits (:mod:`server.validation`), idempotency (:mod:`server.idempotency`),
the group-commit write pipeline (:mod:`server.pipeline`), audiences (:mod:`server.audiences`:
rules, parsing, evaluation and the in-memory index kept by the change feed) and
the one mapping from domain exceptions to ``grpc.Status`` (:mod:`server.errors`).

May import: the generated ``trackd.v1`` code, :mod:`storage`, :mod:`trackd_wire` (the
limits it shares with the gateway), grpc and google.rpc. Never imports :mod:`gateway`
or the driver (pymongo) directly (checked by ``lint-imports``).
"""
