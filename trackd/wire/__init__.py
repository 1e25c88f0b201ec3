"""What both halves of trackd must agree on about the wire, defined once.

The gRPC server (:mod:`trackd.server`) and the REST gateway (:mod:`trackd.gateway`) may not import
each other, yet some rules are the wire's and bind both: the largest gRPC message
(:mod:`trackd.wire.limits`), how deep protobuf decodes a nested message and so how deep
properties may nest, the range of a ``google.protobuf.Timestamp``, and which spellings of a
key name the same property (:mod:`trackd.wire.keys`), the port the gRPC API listens
on by default (:mod:`trackd.wire.endpoints`), and the call metadata the gateway tells
the server each request's id, dialect and client in (:mod:`trackd.wire.metadata`).

May import: the standard library only. Imports nothing of trackd's, so every package may
import it (bench/ too); the Python SDK (``client/``) installs alone and keeps its own copy
of what it needs (``trackd_client.limits``, checked against this by tests/client).
"""
