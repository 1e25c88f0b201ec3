"""``bench/run plan_validators``: what judging one event against a tracking plan costs,
per JSON Schema validator, on the ingest bench's events (:func:`bench.loadgen.event_fields`:
``user_signed_up`` with ``plan``, ``source`` and ``n``).

For each validator: compiling one event's schema, checking a valid event (the hot path:
``is_valid``, no errors collected), and collecting every error of a violating one. The
candidates are jsonschema-rs (what trackd uses, through :mod:`trackd.server.plans.rules`) and,
when it is installed (``pip install fastjsonschema``; it is no dependency of trackd),
fastjsonschema, which knows drafts 4, 6 and 7 only and stops at the first error. Prints
microseconds per event, best of five rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jsonschema_rs

from bench.loadgen import event_fields
from trackd.server.plans.rules import compile_plan, judge

SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["plan"],
    "properties": {"plan": {"type": "string", "enum": ["trial", "pro", "enterprise"]},
                   "source": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
    "additionalProperties": False}
GOOD = [event_fields(seq)["properties"] for seq in range(1000)]
BAD = [{**properties, "plan": 2, "extra": True} for properties in GOOD]


def per_item(check: Callable[[Any], object], items: list[Any], rounds: int) -> float:
    """Microseconds per call, best of five."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            for item in items:
                check(item)
        best = min(best, (time.perf_counter() - started) / (rounds * len(items)))
    return best * 1e6


def per_compile(compile_one: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        compile_one()
    return (time.perf_counter() - started) / count * 1e6


def main() -> int:
    rows: list[tuple[str, float, float, float]] = []
    validator = jsonschema_rs.validator_for(SCHEMA)
    rows.append(("jsonschema-rs", per_compile(lambda: jsonschema_rs.validator_for(SCHEMA), 500),
                 per_item(validator.is_valid, GOOD, 100),
                 per_item(lambda item: list(validator.iter_errors(item)), BAD, 20)))
    plan = compile_plan(1, {"events": {"user_signed_up": {"properties": SCHEMA},
                                       **{f"event_{i}": {"properties": SCHEMA}
                                          for i in range(49)}}})
    rows.append(("trackd judge (jsonschema-rs, 50-event plan)", 0.0,
                 per_item(lambda item: judge(plan, "user_signed_up", item), GOOD, 100),
                 per_item(lambda item: judge(plan, "user_signed_up", item), BAD, 20)))
    try:
        import fastjsonschema  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("fastjsonschema is not installed: `pip install fastjsonschema` to compare")
    else:
        draft7 = {**SCHEMA, "$schema": "http://json-schema.org/draft-07/schema#"}
        compiled = fastjsonschema.compile(draft7)

        def valid(item: Any) -> bool:
            try:
                compiled(item)
            except fastjsonschema.JsonSchemaException:
                return False
            return True

        rows.append(("fastjsonschema (draft 7, first error only)",
                     per_compile(lambda: fastjsonschema.compile(draft7), 20),
                     per_item(valid, GOOD, 100), per_item(valid, BAD, 20)))
    print(f"{'validator':<45} {'compile µs':>11} {'valid µs':>9} {'violating µs':>13}")
    for name, compile_us, good_us, bad_us in rows:
        print(f"{name:<45} {compile_us:>11.1f} {good_us:>9.2f} {bad_us:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
