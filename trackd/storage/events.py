"""The events collection: durable, deduplicated inserts of many events at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bson import encode
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from trackd.storage.errors import DRIVER_ERRORS, StorageUnavailable, translate
from trackd.storage.indexes import EVENTS

DUPLICATE_KEY = 11000


@dataclass
class InsertOutcome:
    """What happened to each document of one ``insert_many``.

    ``duplicate`` holds the indexes of documents whose (project, event id) was already
    stored: they are durable, just not new. ``failed`` maps the indexes of documents the
    database refused for another reason to that reason. Every other document is new.
    """

    duplicate: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)


class EventRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._events = db[EVENTS]

    async def insert_many(self, docs: list[dict[str, Any]]) -> InsertOutcome:
        """Insert ``docs`` unordered, with the database's durable write concern.

        Raises :class:`StorageUnavailable` when the outcome is unknown or not durable
        (connection lost, write concern not satisfied): none of the documents may be
        acknowledged then, though some may have been written (their event ids make a
        retry safe).

        Each document is encoded to BSON here, in one C call, and handed to the driver as
        is: it then neither walks the dict again nor makes an ``_id`` in Python (the
        database assigns it, as MongoDB does for a document without one). Measured with
        ``bench/``: about 1.2 µs less CPU per event in a 500-event flush.
        """
        outcome = InsertOutcome()
        options = self._events.codec_options
        try:
            raw = [RawBSONDocument(encode(doc, codec_options=options)) for doc in docs]
            await self._events.insert_many(raw, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            if details.get("writeConcernErrors"):
                raise StorageUnavailable("write not confirmed durable") from exc
            for error in details.get("writeErrors", []):
                if error.get("code") == DUPLICATE_KEY:
                    outcome.duplicate.add(error["index"])
                else:
                    outcome.failed[error["index"]] = str(error.get("errmsg", "write failed"))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return outcome
