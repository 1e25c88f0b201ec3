"""What the audience index holds: each project's users and per-(user, event) statistics.

:class:`ProjectIndex` is one project's part (kept by :mod:`trackd.server.audiences.index` from the
change feed), :class:`IndexView` what one evaluation reads of it, and :class:`IndexSize`
the estimate the memory budget is kept with.

May import: :mod:`trackd.storage.audiences` (the statistics' type) and
:mod:`trackd.storage.changes`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackd.storage.audiences import EventStats
from trackd.storage.changes import UserCreated, UserRemoved

# What one entry costs in memory, measured with tracemalloc for 13-character user ids
# (a longer id costs a byte more a character): a statistic is the user id string, its dict
# slot and an EventStats (192 bytes); a user is the profile's ObjectId, the id string, its
# dict slot and its set slot (281 bytes).
STAT_ENTRY_BYTES = 200
USER_BYTES = 290

@dataclass(frozen=True)
class IndexSize:
    """What the index holds now, and its estimated size in bytes."""

    projects: int
    users: int
    statistics: int

    @property
    def bytes(self) -> int:
        return self.statistics * STAT_ENTRY_BYTES + self.users * USER_BYTES


class ProjectIndex:
    """One project's part of the index."""

    def __init__(self) -> None:
        self.ready = False
        self.stats: dict[str, dict[str, EventStats]] = {}
        self.users: dict[Any, str] = {}  # profile document id -> external id
        self.members: set[str] = set()
        self.dirty: set[str] = set()
        self.touched: dict[str, int] = {}  # dirty user -> position of their last change
        self.roster_log: list[UserCreated | UserRemoved] = []  # while loading
        self.evaluated = time.monotonic()

    def statistics(self) -> int:
        return sum(len(by_user) for by_user in self.stats.values())

    def size_bytes(self) -> int:
        return IndexSize(1, len(self.users), self.statistics()).bytes

    def make_dirty(self, user: str, position: int) -> None:
        # Their statistics stay as they were until read afresh: a view made before this
        # change still sees them (the change came after its evaluation began), and every
        # later view overrides all dirty users with what it reads.
        self.dirty.add(user)
        self.touched[user] = position

    def add_user(self, document_id: Any, external_id: str) -> None:
        self.users[document_id] = external_id
        self.members.add(external_id)

    def remove_user(self, document_id: Any, position: int) -> None:
        external_id = self.users.pop(document_id, None)
        if external_id is not None:
            self.members.discard(external_id)
            # Their events go with them; whatever arrives for the id later is read afresh.
            self.make_dirty(external_id, position)


class IndexView:
    """What an evaluation reads: the index, with fresh statistics of its dirty users."""

    def __init__(self, project: ProjectIndex, fresh: dict[str, dict[str, EventStats]]) -> None:
        self._project = project
        self._fresh = fresh

    @property
    def members(self) -> set[str]:
        return self._project.members

    def stats(self, name: str) -> Mapping[str, EventStats]:
        by_user = self._project.stats.get(name, {})
        if not self._fresh:
            return by_user
        merged = dict(by_user)
        for user, per_name in self._fresh.items():
            if name in per_name:
                merged[user] = per_name[name]
            else:
                merged.pop(user, None)
        return merged
