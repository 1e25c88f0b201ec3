"""Outbound: stored events leave trackd as signed webhooks (Standard Webhooks 1.0).

What lives here: the delivery configuration (:mod:`trackd.outbound.config`), the address rules
that keep webhooks from reaching private networks (:mod:`trackd.outbound.addresses`), message
bodies, ids and signatures (:mod:`trackd.outbound.messages`), the HTTP client with its
address-checking resolver (:mod:`trackd.outbound.http`), the retry schedule
(:mod:`trackd.outbound.schedule`), one endpoint's delivery lane (:mod:`trackd.outbound.lane`, how
its run ends: :mod:`trackd.outbound.lane_endings`) and
its retry queue (:mod:`trackd.outbound.retries`), the deliverer that takes endpoints' leases and
runs their lanes (:mod:`trackd.outbound.deliverer`), and its metrics
(:mod:`trackd.outbound.metrics`).

Started by the composition root (``trackd/cli/serve.py``) beside the server. May import: the
standard library, aiohttp (its client), orjson, prometheus-client, and storage (all
state is in MongoDB, through storage); never the server, the gateway or the CLI (checked
by ``lint-imports``).
"""
