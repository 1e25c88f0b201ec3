"""Fixtures for the SDK's tests, beside the shared ones (tests/fixtures.py: the real server
in this process, one whose events collection is unreachable, and real processes for
database faults).

The sync ``Client`` blocks its caller in ``flush()`` and ``close()``; against a server
running in the test's own event loop those calls go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import pytest

from tests.client.helpers import Errors
from trackd.server.app import TrackdServer


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def target(server: TrackdServer) -> str:
    """The in-process server's gRPC address."""
    return f"127.0.0.1:{server.port}"
