import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventRuleOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_RULE_OPERATOR_UNSPECIFIED: _ClassVar[EventRuleOperator]
    EVENT_RULE_OPERATOR_HAS_DONE: _ClassVar[EventRuleOperator]
    EVENT_RULE_OPERATOR_HAS_NOT_DONE: _ClassVar[EventRuleOperator]
    EVENT_RULE_OPERATOR_COUNT_GREATER_THAN: _ClassVar[EventRuleOperator]
    EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN: _ClassVar[EventRuleOperator]
    EVENT_RULE_OPERATOR_LAST_DONE_WITHIN: _ClassVar[EventRuleOperator]

class PropertyRuleOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPERTY_RULE_OPERATOR_UNSPECIFIED: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_EQUALS: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_NOT_EQUALS: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_IS_SET: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_IS_NOT_SET: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_CONTAINS: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_GREATER_THAN: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_LESS_THAN: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_DATE_WITHIN: _ClassVar[PropertyRuleOperator]
    PROPERTY_RULE_OPERATOR_DATE_BEFORE: _ClassVar[PropertyRuleOperator]
EVENT_RULE_OPERATOR_UNSPECIFIED: EventRuleOperator
EVENT_RULE_OPERATOR_HAS_DONE: EventRuleOperator
EVENT_RULE_OPERATOR_HAS_NOT_DONE: EventRuleOperator
EVENT_RULE_OPERATOR_COUNT_GREATER_THAN: EventRuleOperator
EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN: EventRuleOperator
EVENT_RULE_OPERATOR_LAST_DONE_WITHIN: EventRuleOperator
PROPERTY_RULE_OPERATOR_UNSPECIFIED: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_EQUALS: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_NOT_EQUALS: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_IS_SET: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_IS_NOT_SET: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_CONTAINS: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_GREATER_THAN: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_LESS_THAN: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_DATE_WITHIN: PropertyRuleOperator
PROPERTY_RULE_OPERATOR_DATE_BEFORE: PropertyRuleOperator

class Audience(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[RuleGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[RuleGroup, _Mapping]]] = ...) -> None: ...

class RuleGroup(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("event", "property")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    event: EventRule
    property: PropertyRule
    def __init__(self, event: _Optional[_Union[EventRule, _Mapping]] = ..., property: _Optional[_Union[PropertyRule, _Mapping]] = ...) -> None: ...

class EventRule(_message.Message):
    __slots__ = ("operator", "event_name", "count", "within", "since", "before")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WITHIN_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    operator: EventRuleOperator
    event_name: str
    count: int
    within: _duration_pb2.Duration
    since: _timestamp_pb2.Timestamp
    before: _timestamp_pb2.Timestamp
    def __init__(self, operator: _Optional[_Union[EventRuleOperator, str]] = ..., event_name: _Optional[str] = ..., count: _Optional[int] = ..., within: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PropertyRule(_message.Message):
    __slots__ = ("operator", "property", "value", "within", "before")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WITHIN_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    operator: PropertyRuleOperator
    property: str
    value: _struct_pb2.Value
    within: _duration_pb2.Duration
    before: _timestamp_pb2.Timestamp
    def __init__(self, operator: _Optional[_Union[PropertyRuleOperator, str]] = ..., property: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., within: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EvaluateAudienceRequest(_message.Message):
    __slots__ = ("audience", "page_size", "page_token")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audience: Audience
    page_size: int
    page_token: str
    def __init__(self, audience: _Optional[_Union[Audience, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class EvaluateAudienceResponse(_message.Message):
    __slots__ = ("external_ids", "total_count", "next_page_token")
    EXTERNAL_IDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    external_ids: _containers.RepeatedScalarFieldContainer[str]
    total_count: int
    next_page_token: str
    def __init__(self, external_ids: _Optional[_Iterable[str]] = ..., total_count: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MatchUserRequest(_message.Message):
    __slots__ = ("external_id", "audience")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    audience: Audience
    def __init__(self, external_id: _Optional[str] = ..., audience: _Optional[_Union[Audience, _Mapping]] = ...) -> None: ...

class MatchUserResponse(_message.Message):
    __slots__ = ("matches", "user_exists")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    USER_EXISTS_FIELD_NUMBER: _ClassVar[int]
    matches: bool
    user_exists: bool
    def __init__(self, matches: _Optional[bool] = ..., user_exists: _Optional[bool] = ...) -> None: ...
