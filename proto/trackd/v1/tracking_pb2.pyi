import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trackd.v1 import plans_pb2 as _plans_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UnknownUserPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_USER_POLICY_UNSPECIFIED: _ClassVar[UnknownUserPolicy]
    UNKNOWN_USER_POLICY_BUFFER: _ClassVar[UnknownUserPolicy]
    UNKNOWN_USER_POLICY_REJECT: _ClassVar[UnknownUserPolicy]
UNKNOWN_USER_POLICY_UNSPECIFIED: UnknownUserPolicy
UNKNOWN_USER_POLICY_BUFFER: UnknownUserPolicy
UNKNOWN_USER_POLICY_REJECT: UnknownUserPolicy

class Event(_message.Message):
    __slots__ = ("event_id", "name", "external_user_id", "anonymous_id", "timestamp", "properties", "context", "properties_json", "client_context_json")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    name: str
    external_user_id: str
    anonymous_id: str
    timestamp: _timestamp_pb2.Timestamp
    properties: _struct_pb2.Struct
    context: EventContext
    properties_json: bytes
    client_context_json: bytes
    def __init__(self, event_id: _Optional[str] = ..., name: _Optional[str] = ..., external_user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[EventContext, _Mapping]] = ..., properties_json: _Optional[bytes] = ..., client_context_json: _Optional[bytes] = ...) -> None: ...

class EventContext(_message.Message):
    __slots__ = ("namespace", "session_id", "source", "website_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    session_id: str
    source: str
    website_id: str
    def __init__(self, namespace: _Optional[str] = ..., session_id: _Optional[str] = ..., source: _Optional[str] = ..., website_id: _Optional[str] = ...) -> None: ...

class TrackEventRequest(_message.Message):
    __slots__ = ("event", "idempotency_key", "unknown_user", "validate_only")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_USER_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    event: Event
    idempotency_key: str
    unknown_user: UnknownUserPolicy
    validate_only: bool
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., unknown_user: _Optional[_Union[UnknownUserPolicy, str]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class TrackEventResponse(_message.Message):
    __slots__ = ("event_id", "duplicate", "violations", "plan_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    duplicate: bool
    violations: _containers.RepeatedCompositeFieldContainer[_plans_pb2.PlanViolation]
    plan_version: int
    def __init__(self, event_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., violations: _Optional[_Iterable[_Union[_plans_pb2.PlanViolation, _Mapping]]] = ..., plan_version: _Optional[int] = ...) -> None: ...

class BatchTrackRequest(_message.Message):
    __slots__ = ("events", "idempotency_key", "unknown_user")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_USER_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    idempotency_key: str
    unknown_user: UnknownUserPolicy
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., unknown_user: _Optional[_Union[UnknownUserPolicy, str]] = ...) -> None: ...

class BatchTrackResponse(_message.Message):
    __slots__ = ("event_ids", "stored_count", "duplicate_count", "event_violations", "plan_version")
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    stored_count: int
    duplicate_count: int
    event_violations: _containers.RepeatedCompositeFieldContainer[EventViolations]
    plan_version: int
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., stored_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., event_violations: _Optional[_Iterable[_Union[EventViolations, _Mapping]]] = ..., plan_version: _Optional[int] = ...) -> None: ...

class EventViolations(_message.Message):
    __slots__ = ("index", "violations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    violations: _containers.RepeatedCompositeFieldContainer[_plans_pb2.PlanViolation]
    def __init__(self, index: _Optional[int] = ..., violations: _Optional[_Iterable[_Union[_plans_pb2.PlanViolation, _Mapping]]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("external_id", "anonymous_id", "traits", "website_id", "idempotency_key", "validate_only", "previous_user_id", "traits_once")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_USER_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_ONCE_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    anonymous_id: str
    traits: _struct_pb2.Struct
    website_id: str
    idempotency_key: str
    validate_only: bool
    previous_user_id: str
    traits_once: _struct_pb2.Struct
    def __init__(self, external_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., website_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., validate_only: _Optional[bool] = ..., previous_user_id: _Optional[str] = ..., traits_once: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class TrackEventsRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CarriedTrackEvent]
    def __init__(self, calls: _Optional[_Iterable[_Union[CarriedTrackEvent, _Mapping]]] = ...) -> None: ...

class CarriedTrackEvent(_message.Message):
    __slots__ = ("metadata", "request")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    request: TrackEventRequest
    def __init__(self, metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ..., request: _Optional[_Union[TrackEventRequest, _Mapping]] = ...) -> None: ...

class MetadataEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TrackEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TrackEventResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TrackEventResult, _Mapping]]] = ...) -> None: ...

class TrackEventResult(_message.Message):
    __slots__ = ("response", "error", "trailing_metadata")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRAILING_METADATA_FIELD_NUMBER: _ClassVar[int]
    response: TrackEventResponse
    error: CallStatus
    trailing_metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    def __init__(self, response: _Optional[_Union[TrackEventResponse, _Mapping]] = ..., error: _Optional[_Union[CallStatus, _Mapping]] = ..., trailing_metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ...) -> None: ...

class CallStatus(_message.Message):
    __slots__ = ("code", "message", "details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    details: _containers.RepeatedCompositeFieldContainer[_any_pb2.Any]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., details: _Optional[_Iterable[_Union[_any_pb2.Any, _Mapping]]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("cursor", "since", "event_names")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    since: _timestamp_pb2.Timestamp
    event_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cursor: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_names: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "cursor", "received_at", "source", "request_id", "plan_version", "plan_violations")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLAN_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    event: Event
    cursor: str
    received_at: _timestamp_pb2.Timestamp
    source: str
    request_id: str
    plan_version: int
    plan_violations: _containers.RepeatedCompositeFieldContainer[_plans_pb2.PlanViolation]
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., cursor: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., request_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., plan_violations: _Optional[_Iterable[_Union[_plans_pb2.PlanViolation, _Mapping]]] = ...) -> None: ...
