"""The REST gateway: speaks four vendors' JSON APIs and turns each request into RPCs.

Most routes make one RPC; Flywheel's ``identify: true`` makes three (validate the event,
upsert the profile, store the event) and Databuddy's website-id requests check the origin
first (``WebsiteService.CheckOrigin``).

What lives here: the app factory (:mod:`trackd.gateway.app`), the one gRPC-code -> HTTP-status
table and error model (:mod:`trackd.gateway.grpc_errors`), request body handling and JSON ->
proto conversion (:mod:`trackd.gateway.body`, :mod:`trackd.gateway.convert`), and one module per
vendor under :mod:`trackd.gateway.dialects` that parses that vendor's requests and renders its
responses and error envelopes; ``GET /`` and the headers every answer carries
(:mod:`trackd.gateway.front_door`); the console (:mod:`trackd.gateway.console`: its page and files
in
``trackd/gateway/console_static``, and :mod:`trackd.gateway.console_streams`, its server-sent
events).

May import: the generated ``trackd.v1`` code, :mod:`trackd.wire` (the limits it shares
with the server), grpc, google.rpc, aiohttp, msgspec, pydantic, orjson. Never imports
:mod:`trackd.storage` or :mod:`trackd.server` (checked by ``lint-imports``): every rule it does not
own is decided by the server and arrives as a gRPC result or status.
"""
