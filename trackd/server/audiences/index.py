"""The audience index: each project's users and per-(user, event) statistics, in memory.

Evaluating an audience over the raw events reads every occurrence of every event a rule
names (measured: ~1 s for the seed audience at 100,000 users and 1,000,000 events on the
embedded database, which reads ~30,000 documents a second). This index answers the same
rules without reading any: per project, event name -> user -> (count, first, last), and
the project's users.

It is kept by one source only, the database's change feed (trackd.storage.changes), whichever
trackd instance wrote: inserts add occurrences, links attribute anonymous ones, profiles
come and go. It is exact, not eventually so:

- Read your writes. Before an evaluation, the index writes a mark and waits for the feed
  to deliver it; every write acknowledged (by any instance) before the evaluation began
  committed before the mark, so its change has been applied.
- Loading. A project is loaded on its first evaluation, in the background (that
  evaluation, and any until the load ends, read the database as before): the feed is
  already watching, the users and events are read, then a mark is awaited. A user any of
  whose changes arrived meanwhile may have been counted by the read too, so they are
  "dirty": their statistics are read from the database (a few `$in` queries) at the next
  evaluation, and become the index's once no change of theirs arrived between that read
  and a following mark.
- Changes a record cannot replay (an event deleted or rewritten) make their user dirty
  the same way; a change that names no user (no pre-image), or a lost feed, drops every
  project, to be loaded again.

Windowed rules (since / before) still read the events: a (count, first, last) summary
cannot say how many occurrences fell in a window. Memory: see bench/audiences.py.

Memory budget: the index estimates its size (:meth:`AudienceIndex.size`) from what it
holds, at :data:`STAT_ENTRY_BYTES` per (event name, user) statistic and
:data:`USER_BYTES` per user; past ``max_bytes`` the least recently evaluated projects are
dropped (never the one being evaluated) and load again on their next evaluation.
"""

from __future__ import annotations

import asyncio
import logging
import time

from trackd.server import metrics
from trackd.server.audiences.catch_up import CatchUp
from trackd.server.audiences.index_contents import (
    IndexSize,
    IndexView,
    ProjectIndex,
)
from trackd.storage import StorageError
from trackd.storage.audiences import AudienceQueries, EventStats
from trackd.storage.changes import (
    Change,
    ChangeFeed,
    EventSeen,
    FeedUnsupported,
    Lost,
    Marked,
    UserCreated,
    UserRemoved,
)

log = logging.getLogger(__name__)

# After the feed fails, how long before trying to open it again.
REOPEN_SECONDS = 5.0
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class AudienceIndex:
    def __init__(self, feed: ChangeFeed, queries: AudienceQueries,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._feed = feed
        self._queries = queries
        self._max_bytes = max_bytes
        self._projects: dict[str, ProjectIndex] = {}
        self._loads: dict[str, asyncio.Task[None]] = {}
        self._position = 0
        self._catch_up = CatchUp(feed)
        self._follower: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[bool] | None = None
        self._unsupported = False
        self._reopen_at = 0.0
        self._closed = False

    async def view(self, project_id: str) -> IndexView | None:
        """The project's index, current as of now; None when the database must be read
        instead (the project is still loading, or the feed is unavailable)."""
        if not await self._running():
            return None
        project = self._projects.get(project_id)
        if project is None:
            self._start_load(project_id)
            return None
        project.evaluated = time.monotonic()
        self._keep_within_budget(project_id)
        if not project.ready or not await self._catch_up.wait():
            return None
        fresh: dict[str, dict[str, EventStats]] = {}
        if project.dirty:
            cleaned = await self._clean(project_id, project)
            if cleaned is None:
                return None
            fresh = cleaned
        if self._projects.get(project_id) is not project:
            return None  # dropped meanwhile
        return IndexView(project, fresh)

    async def prepare(self, project_id: str) -> bool:
        """Load the project now and wait for it; whether the index serves it."""
        if not await self._running():
            return False
        self._start_load(project_id)
        task = self._loads.get(project_id)
        if task is not None:
            await asyncio.shield(task)
        project = self._projects.get(project_id)
        return project is not None and project.ready

    def size(self) -> IndexSize:
        """What the index holds (for metrics: ``size().bytes`` is the estimate)."""
        return IndexSize(len(self._projects),
                         sum(len(p.users) for p in self._projects.values()),
                         sum(p.statistics() for p in self._projects.values()))

    def size_bytes(self) -> int:
        return self.size().bytes

    def _keep_within_budget(self, current: str) -> None:
        """Drop the least recently evaluated projects (never ``current``) while the index
        is over its budget."""
        sizes = {pid: p.size_bytes() for pid, p in self._projects.items()}
        total = sum(sizes.values())
        for pid in sorted(sizes, key=lambda pid: self._projects[pid].evaluated):
            if total <= self._max_bytes:
                break
            if pid == current:
                continue
            task = self._loads.pop(pid, None)
            if task is not None:
                task.cancel()
            if self._projects.pop(pid).ready:
                metrics.AUDIENCE_PROJECTS.dec()
            total -= sizes[pid]
            log.info("audience index dropped %s (least recently evaluated) to stay within "
                     "%d bytes", pid, self._max_bytes)
        metrics.AUDIENCE_BYTES.set(total)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._follower, self._opening, *self._catch_up.tasks(),
                             *self._loads.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._drop("trackd is stopping")
        await self._feed.close()

    # The feed.

    async def _running(self) -> bool:
        if self._unsupported or self._closed:
            return False
        if self._follower is not None and not self._follower.done():
            return True
        if time.monotonic() < self._reopen_at:
            return False
        if self._opening is None or self._opening.done():
            self._opening = asyncio.create_task(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> bool:
        try:
            await self._feed.open()
        except FeedUnsupported as exc:
            log.warning("audiences read the database: it offers no change streams (%s)", exc)
            self._unsupported = True
            return False
        except StorageError as exc:
            log.warning("audience index unavailable, reading the database: %s", exc)
            self._reopen_at = time.monotonic() + REOPEN_SECONDS
            return False
        self._follower = asyncio.create_task(self._follow())
        return True

    async def _follow(self) -> None:
        try:
            async for records in self._feed.changes():
                for record in records:
                    self._apply(record)
        except StorageError as exc:
            log.warning("audience index lost its change feed: %s", exc)
        except Exception:
            log.exception("audience index stopped following the change feed")
        finally:
            self._reopen_at = time.monotonic() + REOPEN_SECONDS
            self._drop("the change feed stopped")

    def _apply(self, record: Change) -> None:
        self._position += 1
        position = self._position
        if isinstance(record, Marked):
            if record.owner == self._feed.owner:
                self._catch_up.delivered(record.seq)
            return
        if isinstance(record, Lost):
            log.warning("audience index dropped every project: %s", record.reason)
            self._drop(record.reason)
            return
        if isinstance(record, UserRemoved):
            for each in self._projects.values():
                if each.ready:
                    each.remove_user(record.document_id, position)
                else:
                    each.roster_log.append(record)
            return
        project = self._projects.get(record.project_id)
        if project is None:
            return
        if isinstance(record, UserCreated):
            if project.ready:
                project.add_user(record.document_id, record.external_id)
            else:
                project.roster_log.append(record)
        elif isinstance(record, EventSeen) and project.ready and \
                record.user_id not in project.dirty:
            by_user = project.stats.setdefault(record.name, {})
            known = by_user.get(record.user_id)
            by_user[record.user_id] = EventStats(1, record.timestamp, record.timestamp) \
                if known is None else known.plus(record.timestamp)
            metrics.AUDIENCE_EVENTS.labels("feed").inc()
        else:  # UserTouched, or an event of a user whose statistics are being read
            project.make_dirty(record.user_id, position)

    def _drop(self, reason: str) -> None:
        for task in self._loads.values():
            task.cancel()
        self._loads.clear()
        metrics.AUDIENCE_PROJECTS.dec(sum(p.ready for p in self._projects.values()))
        self._projects.clear()
        metrics.AUDIENCE_BYTES.set(0)
        self._catch_up.fail_all()
        log.debug("audience index emptied: %s", reason)

    # Loading and cleaning.

    def _start_load(self, project_id: str) -> None:
        if project_id not in self._projects:
            project = ProjectIndex()
            # Registered first: from here on every change of the project is captured.
            self._projects[project_id] = project
            self._loads[project_id] = asyncio.create_task(self._load(project_id, project))

    async def _load(self, project_id: str, project: ProjectIndex) -> None:
        started = time.monotonic()
        caught_up = False
        try:
            users = await self._queries.user_document_ids(project_id)
            stats = await self._queries.every_event_stats(project_id)
            caught_up = await self._catch_up.wait()
        except StorageError as exc:
            log.warning("could not load the audience index of %s: %s", project_id, exc)
        except Exception:
            # Not the database's fault (a document of an unexpected shape): the project is
            # evaluated from the events, and the load is tried again on a later evaluation.
            log.exception("could not load the audience index of %s", project_id)
        finally:
            if self._loads.get(project_id) is asyncio.current_task():
                del self._loads[project_id]
            if not caught_up and self._projects.get(project_id) is project:
                del self._projects[project_id]  # nothing kept while it does not serve
        if self._projects.get(project_id) is not project:
            return
        project.stats = stats
        for document_id, external_id in users.items():
            project.add_user(document_id, external_id)
        for change in project.roster_log:
            if isinstance(change, UserCreated):
                project.add_user(change.document_id, change.external_id)
            else:
                project.remove_user(change.document_id, self._position)
        project.roster_log = []
        project.ready = True  # dirty users' statistics from the read: overridden by views
        metrics.AUDIENCE_PROJECTS.inc()
        metrics.AUDIENCE_EVENTS.labels("load").inc(
            sum(each.count for by_user in stats.values() for each in by_user.values()))
        self._keep_within_budget(project_id)
        log.info("audience index of %s loaded: %d users, %d event names, %.1f s",
                 project_id, len(project.members), len(stats), time.monotonic() - started)

    async def _clean(self, project_id: str,
                     project: ProjectIndex) -> dict[str, dict[str, EventStats]] | None:
        """Read the dirty users' statistics; install those no change overtook. Returns
        what this evaluation uses for the users still dirty."""
        users = set(project.dirty)
        start = self._position
        try:
            fetched = await self._queries.stats_of_users(project_id, users)
        except StorageError:
            return None
        if not await self._catch_up.wait() or self._projects.get(project_id) is not project:
            return None
        for user in users:
            if project.touched.get(user, 0) <= start and user in project.dirty:
                for by_user in project.stats.values():
                    by_user.pop(user, None)
                for name, stats in fetched[user].items():
                    project.stats.setdefault(name, {})[user] = stats
                project.dirty.discard(user)
                project.touched.pop(user, None)
        return {user: fetched[user] for user in users if user in project.dirty}
