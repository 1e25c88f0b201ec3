import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlanViolationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_VIOLATION_KIND_UNSPECIFIED: _ClassVar[PlanViolationKind]
    PLAN_VIOLATION_KIND_UNPLANNED_EVENT: _ClassVar[PlanViolationKind]
    PLAN_VIOLATION_KIND_MISSING_REQUIRED: _ClassVar[PlanViolationKind]
    PLAN_VIOLATION_KIND_WRONG_TYPE: _ClassVar[PlanViolationKind]
    PLAN_VIOLATION_KIND_UNEXPECTED_PROPERTY: _ClassVar[PlanViolationKind]
    PLAN_VIOLATION_KIND_INVALID_VALUE: _ClassVar[PlanViolationKind]
PLAN_VIOLATION_KIND_UNSPECIFIED: PlanViolationKind
PLAN_VIOLATION_KIND_UNPLANNED_EVENT: PlanViolationKind
PLAN_VIOLATION_KIND_MISSING_REQUIRED: PlanViolationKind
PLAN_VIOLATION_KIND_WRONG_TYPE: PlanViolationKind
PLAN_VIOLATION_KIND_UNEXPECTED_PROPERTY: PlanViolationKind
PLAN_VIOLATION_KIND_INVALID_VALUE: PlanViolationKind

class PlanViolation(_message.Message):
    __slots__ = ("kind", "field", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: PlanViolationKind
    field: str
    message: str
    def __init__(self, kind: _Optional[_Union[PlanViolationKind, str]] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SetTrackingPlanRequest(_message.Message):
    __slots__ = ("plan_json",)
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    plan_json: bytes
    def __init__(self, plan_json: _Optional[bytes] = ...) -> None: ...

class SetTrackingPlanResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class GetTrackingPlanRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class GetTrackingPlanResponse(_message.Message):
    __slots__ = ("version", "plan_json", "create_time", "current_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    plan_json: bytes
    create_time: _timestamp_pb2.Timestamp
    current_version: int
    def __init__(self, version: _Optional[int] = ..., plan_json: _Optional[bytes] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_version: _Optional[int] = ...) -> None: ...

class GetViolationReportRequest(_message.Message):
    __slots__ = ("since",)
    SINCE_FIELD_NUMBER: _ClassVar[int]
    since: _duration_pb2.Duration
    def __init__(self, since: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ViolationReportRow(_message.Message):
    __slots__ = ("event_name", "kind", "count", "last_seen", "example", "example_request_id", "example_event_id")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    kind: PlanViolationKind
    count: int
    last_seen: _timestamp_pb2.Timestamp
    example: PlanViolation
    example_request_id: str
    example_event_id: str
    def __init__(self, event_name: _Optional[str] = ..., kind: _Optional[_Union[PlanViolationKind, str]] = ..., count: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., example: _Optional[_Union[PlanViolation, _Mapping]] = ..., example_request_id: _Optional[str] = ..., example_event_id: _Optional[str] = ...) -> None: ...

class GetViolationReportResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ViolationReportRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[ViolationReportRow, _Mapping]]] = ...) -> None: ...

class QuarantinedEvent(_message.Message):
    __slots__ = ("event_id", "name", "external_user_id", "anonymous_id", "timestamp", "properties_json", "violations", "plan_version", "request_id", "quarantine_time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    name: str
    external_user_id: str
    anonymous_id: str
    timestamp: _timestamp_pb2.Timestamp
    properties_json: bytes
    violations: _containers.RepeatedCompositeFieldContainer[PlanViolation]
    plan_version: int
    request_id: str
    quarantine_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., name: _Optional[str] = ..., external_user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., properties_json: _Optional[bytes] = ..., violations: _Optional[_Iterable[_Union[PlanViolation, _Mapping]]] = ..., plan_version: _Optional[int] = ..., request_id: _Optional[str] = ..., quarantine_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListQuarantinedEventsRequest(_message.Message):
    __slots__ = ("event_name", "page_size")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    page_size: int
    def __init__(self, event_name: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListQuarantinedEventsResponse(_message.Message):
    __slots__ = ("events", "total_count")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[QuarantinedEvent]
    total_count: int
    def __init__(self, events: _Optional[_Iterable[_Union[QuarantinedEvent, _Mapping]]] = ..., total_count: _Optional[int] = ...) -> None: ...

class ReleaseQuarantinedEventsRequest(_message.Message):
    __slots__ = ("event_name",)
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    def __init__(self, event_name: _Optional[str] = ...) -> None: ...

class ReleaseQuarantinedEventsResponse(_message.Message):
    __slots__ = ("stored_count", "duplicate_count", "still_quarantined_count", "plan_version")
    STORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STILL_QUARANTINED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    stored_count: int
    duplicate_count: int
    still_quarantined_count: int
    plan_version: int
    def __init__(self, stored_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., still_quarantined_count: _Optional[int] = ..., plan_version: _Optional[int] = ...) -> None: ...

class DropQuarantinedEventsRequest(_message.Message):
    __slots__ = ("event_name",)
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    def __init__(self, event_name: _Optional[str] = ...) -> None: ...

class DropQuarantinedEventsResponse(_message.Message):
    __slots__ = ("dropped_count",)
    DROPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    dropped_count: int
    def __init__(self, dropped_count: _Optional[int] = ...) -> None: ...
