"""Outbound: stored events leave trackd as signed webhooks (Standard Webhooks 1.0).

What lives here: the delivery configuration (:mod:`outbound.config`), the address rules
that keep webhooks from reaching private networks (:mod:`outbound.addresses`), message
bodies, ids and signatures (:mod:`outbound.messages`), the HTTP client with its
address-checking resolver (:mod:`outbound.http`), the retry schedule
(:mod:`outbound.schedule`), one endpoint's delivery lane (:mod:`outbound.lane`) and its
retry queue (:mod:`outbound.retries`), the deliverer that takes endpoints' leases and
runs their lanes (:mod:`outbound.deliverer`), and its metrics (:mod:`outbound.metrics`).

Started by the composition root (``cli/serve.py``) beside the server. May import: the
standard library, aiohttp (its client), orjson, prometheus-client, and storage (all
state is in MongoDB, through storage); never the server, the gateway or the CLI (checked
by ``lint-imports``).
"""
