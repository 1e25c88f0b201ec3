"""One shape for the collections whose documents are plain records (api_keys, websites).

A record type is a frozen, keyword-only dataclass deriving from :class:`StoredRecord`:
it belongs to a project, was made at ``created_at``, and its field named ``ID_FIELD`` is
the document's ``_id``. :class:`RecordRepository` reads such documents as records
(:func:`from_document`), inserts and finds them, and lists a project's (or every
project's) in creation order; each repository adds the queries of its own.

May import: the standard library, pymongo and :mod:`trackd.storage.errors`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection

from trackd.storage.errors import translated


@dataclass(frozen=True, kw_only=True)
class StoredRecord:
    """What every record has: its project and when it was made."""

    ID_FIELD: ClassVar[str]  # the field stored as the document's ``_id``

    project_id: str
    created_at: datetime


RecordT = TypeVar("RecordT", bound=StoredRecord)


def from_document(record_type: type[RecordT], doc: Mapping[str, Any]) -> RecordT:
    """``doc`` as a ``record_type``: a field absent from the document takes its default
    (a field without one must be stored), and a tuple field reads the stored list."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(record_type):
        key = "_id" if field.name == record_type.ID_FIELD else field.name
        if key not in doc and (field.default is not dataclasses.MISSING):
            continue
        value = doc[key]
        values[field.name] = tuple(value) if str(field.type).startswith("tuple") else value
    return record_type(**values)


class RecordRepository(Generic[RecordT]):
    """A collection of ``record_type`` documents."""

    def __init__(self, collection: AsyncCollection[Any], record_type: type[RecordT]) -> None:
        self._collection = collection
        self._record_type = record_type

    def _record(self, doc: Mapping[str, Any]) -> RecordT:
        return from_document(self._record_type, doc)

    async def _insert(self, doc: dict[str, Any]) -> RecordT:
        with translated():
            await self._collection.insert_one(doc)
        return self._record(doc)

    async def _find_one(self, query: Mapping[str, Any]) -> RecordT | None:
        with translated():
            doc = await self._collection.find_one(query)
        return None if doc is None else self._record(doc)

    async def list(self, project_id: str | None = None) -> list[RecordT]:
        """Every record of ``project_id`` (None: of every project), oldest first."""
        query = {} if project_id is None else {"project_id": project_id}
        with translated():
            return [self._record(doc)
                    async for doc in self._collection.find(query).sort("created_at", 1)]
