"""How trackd's change streams (the API key feed, the plan feed, the audience change feed)
are opened, and how a collection's changes are followed (:func:`followed_changes`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from trackd.storage.errors import DRIVER_ERRORS, StorageError, translate

T = TypeVar("T")

# What a server without change streams answers a watch with: 40573 (a standalone
# mongod) and 40324 (an unknown stage: a server that predates $changeStream).
NO_CHANGE_STREAMS = frozenset({40573, 40324})

# How long the server holds a getMore that has nothing to return. A change that commits
# meanwhile is returned at once (MongoDB's awaitData, and the embedded SecantusDB's:
# a change seen 1-2 ms after its insert with this wait), so this bounds only how often
# an idle stream asks again. At 100 ms an idle trackd spent about a fifth of its CPU
# asking (bench/README.md).
CHANGE_WAIT_MS = 1000

# The least time between two getMores of a stream that answered empty. MongoDB answers
# empty only after CHANGE_WAIT_MS; SecantusDB as soon as anything is written anywhere, so
# a stream of a collection that seldom changes (api_keys) was asked again after every
# insert of events (84 getMores in 3 s beside 30 inserts a second; 30 with this gap). A
# change committed meanwhile is seen at most this much later. PyMongo's own
# AsyncChangeStream.try_next documentation pauses the same way.
EMPTY_ANSWER_GAP_SECONDS = 0.1


@contextlib.contextmanager
def watching(unsupported: type[StorageError]) -> Iterator[None]:
    """Around opening and reading a change stream: ``unsupported`` when the server has no
    change streams, storage's own error (:func:`trackd.storage.errors.translate`) for the rest."""
    try:
        yield
    except OperationFailure as exc:
        if exc.code in NO_CHANGE_STREAMS:
            raise unsupported(str(exc)) from exc
        raise translate(exc) from exc
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc


async def followed_changes(collection: AsyncCollection[Any], unsupported: type[StorageError],
                           read: Callable[[Mapping[str, Any]], T]) -> AsyncIterator[T | None]:
    """Every change to ``collection`` as it commits (within :data:`EMPTY_ANSWER_GAP_SECONDS`),
    as ``read`` makes it of the change event (whose full document is looked up); None
    first, once the stream is open.

    Raises ``unsupported`` on a server without change streams, StorageUnavailable when the
    stream fails (changes may have been missed: the caller must forget what it cached).
    """
    with watching(unsupported):
        async with await collection.watch(full_document="updateLookup",
                                          max_await_time_ms=CHANGE_WAIT_MS) as stream:
            yield None
            loop = asyncio.get_running_loop()
            while stream.alive:
                asked = loop.time()
                change = await stream.try_next()
                if change is None:  # an empty answer: ask again, not too soon
                    await asyncio.sleep(EMPTY_ANSWER_GAP_SECONDS - (loop.time() - asked))
                    continue
                yield read(change)
