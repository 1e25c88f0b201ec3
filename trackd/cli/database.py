"""The database a command uses: MONGODB_URI's, else the embedded one in the data dir.

Shared by ``trackd serve`` (:mod:`trackd.cli.serve`) and the admin commands
(:mod:`trackd.cli.admin`): :func:`database_uri` starts (or attaches to) the embedded database for
the block, and :func:`open_store` connects, bounded by ``TRACKD_MONGODB_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from trackd.cli.instance import AlreadyServed, ServeLock
from trackd.cli.settings import Settings
from trackd.cli.usage import StartupError, UsageError
from trackd.storage import InvalidUri, StorageUnavailable, Store, connect
from trackd.storage.embedded import EmbeddedDatabase, EmbeddedUnavailable, is_installed

log = logging.getLogger("trackd")


@contextlib.contextmanager
def database_uri(settings: Settings,
                 serving: bool = False,
                 ) -> Iterator[tuple[str, EmbeddedDatabase | None, ServeLock | None]]:
    """MONGODB_URI when set; else the embedded database in the data dir, for the block.

    ``serving``: this is ``trackd serve``, which takes the data dir's serve lock first
    (a second serve exits at once, naming the first) and must own the database it runs.
    """
    if settings.mongodb_uri:
        yield settings.mongodb_uri, None, None
        return
    if not is_installed():
        raise UsageError(
            "no database: set MONGODB_URI (or --mongodb-uri) to a MongoDB server, "
            "or install the embedded one with: pip install 'trackd[embedded]'")
    data_dir = settings.data_dir.resolve()
    lock = ServeLock(data_dir) if serving else None
    try:
        if lock is not None:
            try:
                lock.acquire()
            except AlreadyServed as exc:
                raise StartupError(str(exc)) from exc
            except OSError as exc:
                raise StartupError(f"cannot use the data directory {data_dir}: "
                                   f"{exc.strerror}; set another with --data-dir "
                                   "(TRACKD_DATA_DIR)") from exc
        embedded = EmbeddedDatabase(data_dir)
        try:
            uri = embedded.start(own=serving)
        except EmbeddedUnavailable as exc:
            raise StartupError(str(exc)) from exc
        except OSError as exc:
            raise StartupError(f"cannot use the data directory {data_dir}: {exc.strerror}; "
                               "set another with --data-dir (TRACKD_DATA_DIR)") from exc
        if embedded.owner:
            log.info("embedded database (SecantusDB, pid %s) serving %s at %s",
                     embedded.pid, data_dir, uri)
        try:
            yield uri, embedded, lock
        finally:
            embedded.stop()
    finally:
        if lock is not None:
            lock.release()


async def open_store(settings: Settings, uri: str) -> Store:
    """The store, once the database answers (bounded); one line when it cannot be had."""
    try:
        return await connect(uri, settings.database,
                             reachable_within=settings.mongodb_timeout_seconds)
    except InvalidUri as exc:
        raise UsageError(f"MONGODB_URI (--mongodb-uri) is not a MongoDB connection string "
                         f"PyMongo accepts: {exc}") from exc
    except StorageUnavailable as exc:
        raise StartupError(f"{exc}: check MONGODB_URI (--mongodb-uri), or wait longer with "
                           "TRACKD_MONGODB_TIMEOUT_SECONDS") from exc


async def with_store(settings: Settings, uri: str,
                     action: Callable[[Store], Awaitable[int]]) -> int:
    store = await open_store(settings, uri)
    try:
        return await action(store)
    finally:
        await store.close()
