"""How a lane's run ends other than by being stopped: its lease lost, or its endpoint to be
disabled. Raised inside the lane's task group (:mod:`trackd.outbound.lane`); imports
nothing of trackd."""

from __future__ import annotations


class LeaseLost(Exception):
    """Another instance holds the endpoint now, or it was disabled or deleted."""


class Disable(Exception):
    """The endpoint must be disabled (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def first_disable(group: BaseExceptionGroup[Disable]) -> Disable:
    """The first :class:`Disable` of a group (task groups nest them)."""
    for exc in group.exceptions:
        if isinstance(exc, Disable):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return first_disable(exc)
    raise AssertionError("a Disable group without a Disable")
