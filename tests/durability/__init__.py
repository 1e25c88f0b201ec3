"""Durability under faults: real database and trackd processes, killed and stopped mid-load.

Every test runs its own SecantusDB process (on a fixed port, so it can be restarted on the
same port and data directory) and its own ``trackd serve`` process, drives concurrent
VibeFollow requests with unique event ids, injects a fault, and then counts what the
database holds. Nothing is mocked, nothing asserts on elapsed time, and every process is
bounded by timeouts and killed in a ``finally``.
"""
