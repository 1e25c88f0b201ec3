"""Helpers for the example clients in other languages (examples/): where they live, what
each prints, running one as a process, and a missing toolchain (a skip, but in CI a
failure)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests import processes

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "gen"
TIMEOUT_SECONDS = 600.0  # a bound for a stuck process (a cold Go build), never asserted on
# Set by .ci/run: there a missing toolchain is a failure, not a skip.
REQUIRE_ENV = "TRACKD_REQUIRE_CLIENT_TOOLCHAINS"


def toolchain_missing(reason: str) -> NoReturn:
    """Skip the test, because ``reason`` (a toolchain is absent); fail it in CI."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it")
    pytest.skip(reason)


INVALID = "event.external_user_id: is required when anonymous_id is empty"


def expected_output(event_id: str) -> str:
    """What every example client prints: the same in each language."""
    return (f"tracked event {event_id} (duplicate: false)\n"
            f"rejected: InvalidArgument: {INVALID}\n"
            f"field violation: {INVALID}\n"
            "reason: INVALID_ARGUMENT (ErrorReason 1, domain trackd)\n")


async def run(argv: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> tuple[int, str, str]:
    """Run a process to its end: its exit status, stdout and stderr."""
    return await processes.run(argv, bound_seconds=TIMEOUT_SECONDS, env=env, cwd=cwd)
