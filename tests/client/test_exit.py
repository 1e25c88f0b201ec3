"""A script that tracks and ends without ``close()`` loses nothing: the client flushes at
interpreter exit. Run as a real subprocess against the real server."""

from __future__ import annotations

import asyncio
import sys

from tests.client.helpers import count_by_event_id
from trackd.storage import Store

EVENTS = 1234

# Nothing would be sent before exit: batches of 500 go out only when full, and the flush
# interval is an hour; the last 234 events are left for the exit-time flush (given a
# minute: a loaded test machine is slow, and this is not about the timeout).
SCRIPT = f"""
import sys
from trackd_client import Client

client = Client(sys.argv[1], sys.argv[2], flush_interval=3600, close_timeout=60)
for n in range({EVENTS}):
    client.track("script_ran", user_id="usr_1", event_id=f"exit-{{n}}", properties={{"n": n}})
print(client.stats().sent, flush=True)
"""


async def test_events_tracked_before_exit_are_flushed_at_exit(
    target: str, api_key: str, store: Store,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, target, api_key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert int(out.decode().strip()) < EVENTS  # not all sent when the script ended
    assert "trackd_client" not in err.decode()  # nothing failed, nothing logged
    assert await count_by_event_id(store) == {f"exit-{n}": 1 for n in range(EVENTS)}
