"""Audience evaluation: which of a project's users match parsed audience groups.

A group (AND of rules) is evaluated as set algebra over external ids, cheapest first:
the positive event rules (has done, count greater than, first/last done within) each
yield the users who satisfy them, and every later query is narrowed to the users still
in the running; has-not-done rules then subtract; property rules are checked on the
surviving users' profiles. A group without a positive event rule starts from every user
of the project. Only users with a profile can match: events buffered for a user who was
never upserted count from the moment the user is. Statistics and the users come from the
audience index (:mod:`trackd.server.audiences.index`) when it serves the project, else from
queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from trackd.server.audiences.index_contents import IndexView
from trackd.server.audiences.rules import POSITIVE, EventCondition, Group, PropertyCondition
from trackd.storage.audiences import IN_LOOKUP_LIMIT, AudienceQueries, EventStats


class Evaluator:
    """Evaluates parsed audiences for one project: from the audience index when it
    serves the project (``index``), else from the store; windowed event rules and
    property rules always read the store."""

    def __init__(self, queries: AudienceQueries, project_id: str,
                 index: IndexView | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._queries = queries
        self._project = project_id
        self._index = index
        self._now = now()
        self._roster_ids: set[str] | None = None  # read once per evaluation

    async def matching(self, groups: tuple[Group, ...],
                       universe: set[str] | None = None) -> set[str]:
        """External ids of the users (of ``universe``, or all) matching any group."""
        matched: set[str] = set()
        for group in groups:
            matched |= await self._group(group, universe)
        return matched

    async def _group(self, group: Group, universe: set[str] | None) -> set[str]:
        events = [c for c in group if isinstance(c, EventCondition)]
        properties = [c for c in group if isinstance(c, PropertyCondition)]
        if universe is not None and len(universe) <= IN_LOOKUP_LIMIT:
            survivors = await self._few(events, universe)
        else:
            # Each rule's query reads all of that event's occurrences either way (narrowing
            # by a long id list costs more than it saves), so they run at once, beside the
            # roster read: the database works on one while trackd decodes another.
            all_stats, roster = await asyncio.gather(
                asyncio.gather(*(self._stats(c, None) for c in events)), self._roster())
            # A new set: the roster is shared by every group of this evaluation.
            survivors = set(roster) if universe is None else universe & roster
            for condition, stats in zip(events, all_stats, strict=True):
                if condition.op in POSITIVE:
                    survivors &= {user for user, s in stats.items()
                                  if condition.holds(s, self._now)}
                else:
                    survivors -= set(stats)
        if properties and survivors:
            fields = {name.split(".")[0] for c in properties for name in c.names}
            profiles = await self._queries.profiles(self._project, fields, survivors)
            survivors = {user for user, profile in profiles.items()
                         if all(c.holds(profile, self._now) for c in properties)}
        return survivors

    async def _few(self, events: list[EventCondition], universe: set[str]) -> set[str]:
        """The users of a small ``universe`` (one being matched) meeting the event rules:
        each query is narrowed to them, positive rules first."""
        candidates = universe & self._index.members if self._index is not None \
            else set(await self._queries.profiles(self._project, (), universe))
        for condition in sorted(events, key=lambda c: c.op not in POSITIVE):
            if not candidates:
                break
            stats = await self._stats(condition, candidates)
            candidates = {user for user in candidates
                          if condition.holds(stats.get(user), self._now)}
        return candidates

    async def _roster(self) -> set[str]:
        if self._index is not None:
            return self._index.members
        if self._roster_ids is None:
            self._roster_ids = await self._queries.user_ids(self._project)
        return self._roster_ids

    async def _stats(self, condition: EventCondition,
                     users: set[str] | None) -> Mapping[str, EventStats]:
        if self._index is not None and condition.since is None and condition.before is None:
            stats = self._index.stats(condition.name)
            return stats if users is None else {user: stats[user] for user in users
                                                if user in stats}
        return await self._queries.event_stats(
            self._project, condition.name, since=condition.since, before=condition.before,
            users=users)
