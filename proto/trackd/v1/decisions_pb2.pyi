import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trackd.v1 import plans_pb2 as _plans_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_KIND_UNSPECIFIED: _ClassVar[DecisionKind]
    DECISION_KIND_REFUSED: _ClassVar[DecisionKind]
    DECISION_KIND_DUPLICATE: _ClassVar[DecisionKind]
    DECISION_KIND_RATE_LIMITED: _ClassVar[DecisionKind]
    DECISION_KIND_QUARANTINED: _ClassVar[DecisionKind]
DECISION_KIND_UNSPECIFIED: DecisionKind
DECISION_KIND_REFUSED: DecisionKind
DECISION_KIND_DUPLICATE: DecisionKind
DECISION_KIND_RATE_LIMITED: DecisionKind
DECISION_KIND_QUARANTINED: DecisionKind

class Decision(_message.Message):
    __slots__ = ("kind", "time", "request_id", "source", "method", "code", "reason", "field", "description", "events", "event_ids", "event_names", "violations", "id", "plan_violations")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    kind: DecisionKind
    time: _timestamp_pb2.Timestamp
    request_id: str
    source: str
    method: str
    code: int
    reason: str
    field: str
    description: str
    events: int
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    event_names: _containers.RepeatedScalarFieldContainer[str]
    violations: _containers.RepeatedScalarFieldContainer[str]
    id: str
    plan_violations: _containers.RepeatedCompositeFieldContainer[_plans_pb2.PlanViolation]
    def __init__(self, kind: _Optional[_Union[DecisionKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., source: _Optional[str] = ..., method: _Optional[str] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., description: _Optional[str] = ..., events: _Optional[int] = ..., event_ids: _Optional[_Iterable[str]] = ..., event_names: _Optional[_Iterable[str]] = ..., violations: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ..., plan_violations: _Optional[_Iterable[_Union[_plans_pb2.PlanViolation, _Mapping]]] = ...) -> None: ...

class DecisionSampling(_message.Message):
    __slots__ = ("not_recorded", "time")
    NOT_RECORDED_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    not_recorded: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, not_recorded: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("since",)
    SINCE_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchDecisionsResponse(_message.Message):
    __slots__ = ("decision", "sampling")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    sampling: DecisionSampling
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., sampling: _Optional[_Union[DecisionSampling, _Mapping]] = ...) -> None: ...

class GetOverviewRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NamedCount(_message.Message):
    __slots__ = ("name", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class MinuteCounts(_message.Message):
    __slots__ = ("minute", "stored", "duplicates", "rate_limited", "refused")
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    minute: _timestamp_pb2.Timestamp
    stored: int
    duplicates: int
    rate_limited: int
    refused: _containers.RepeatedCompositeFieldContainer[NamedCount]
    def __init__(self, minute: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rate_limited: _Optional[int] = ..., refused: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ...) -> None: ...

class GetOverviewResponse(_message.Message):
    __slots__ = ("minutes", "top_event_names", "top_violations")
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    TOP_EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    TOP_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    minutes: _containers.RepeatedCompositeFieldContainer[MinuteCounts]
    top_event_names: _containers.RepeatedCompositeFieldContainer[NamedCount]
    top_violations: _containers.RepeatedCompositeFieldContainer[NamedCount]
    def __init__(self, minutes: _Optional[_Iterable[_Union[MinuteCounts, _Mapping]]] = ..., top_event_names: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., top_violations: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ...) -> None: ...
