"""Running a helper program (node, go, a built client) to its end, from the tests.

One place for the bound on a stuck process (it is killed, never left behind) and for
reading the JSON line such a program prints last.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def run(argv: Sequence[str], *, bound_seconds: float, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> tuple[int, str, str]:
    """Run a process to its end: its exit status, stdout and stderr. ``bound_seconds`` bounds
    a stuck process (it is killed); it is never a timing assertion."""
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), bound_seconds)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def run_for_json(argv: Sequence[str], *, bound_seconds: float) -> dict[str, Any]:
    """Run a program that must succeed and print a JSON object as its last line."""
    code, stdout, stderr = await run(argv, bound_seconds=bound_seconds)
    assert code == 0, stderr
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result
