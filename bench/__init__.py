"""trackd's load and ratio benchmarks (not tests): ``python -m bench`` or ``bench/run``.

What lives here: the orchestrator (:mod:`bench.main`), which starts every server and load
generator as its own process and reads their CPU time from ``/proc``; the baseline
servers (:mod:`bench.bare_http`, :mod:`bench.bare_grpc`); the load generators
(:mod:`bench.db_load` for the raw driver, :mod:`bench.grpc_load`, :mod:`bench.wrk` and its
fallback :mod:`bench.http_load`); the report (:mod:`bench.report`) and the py-spy profile
summary (:mod:`bench.profiling`).

May import: everything. The raw-driver baseline imports pymongo directly on purpose: it
measures the database without trackd in the way. Nothing in trackd imports bench.
"""
