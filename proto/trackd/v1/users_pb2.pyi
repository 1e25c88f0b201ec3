import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trackd.v1 import tracking_pb2 as _tracking_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("external_id", "email", "emails", "phone", "phones", "name", "first_name", "last_name", "company", "role", "plan", "avatar_url", "signed_up_at", "stripe_customer_id", "traits", "anonymous_ids", "created_at", "updated_at")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PHONES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    SIGNED_UP_AT_FIELD_NUMBER: _ClassVar[int]
    STRIPE_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    email: str
    emails: _containers.RepeatedScalarFieldContainer[str]
    phone: str
    phones: _containers.RepeatedScalarFieldContainer[str]
    name: str
    first_name: str
    last_name: str
    company: str
    role: str
    plan: str
    avatar_url: str
    signed_up_at: _timestamp_pb2.Timestamp
    stripe_customer_id: str
    traits: _struct_pb2.Struct
    anonymous_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, external_id: _Optional[str] = ..., email: _Optional[str] = ..., emails: _Optional[_Iterable[str]] = ..., phone: _Optional[str] = ..., phones: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., first_name: _Optional[str] = ..., last_name: _Optional[str] = ..., company: _Optional[str] = ..., role: _Optional[str] = ..., plan: _Optional[str] = ..., avatar_url: _Optional[str] = ..., signed_up_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stripe_customer_id: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., anonymous_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertUserRequest(_message.Message):
    __slots__ = ("user", "idempotency_key")
    USER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user: User
    idempotency_key: str
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpsertUserResponse(_message.Message):
    __slots__ = ("user", "created")
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    user: User
    created: bool
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class BatchUpsertUsersRequest(_message.Message):
    __slots__ = ("users", "idempotency_key")
    USERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    idempotency_key: str
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("index", "code", "message", "field", "description")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: str
    message: str
    field: str
    description: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class BatchUpsertUsersResponse(_message.Message):
    __slots__ = ("accepted_count", "rejected_count", "errors", "created_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    rejected_count: int
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    created_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ..., created_count: _Optional[int] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("external_id", "email")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    email: str
    def __init__(self, external_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class UpdateUserRequest(_message.Message):
    __slots__ = ("user", "idempotency_key")
    USER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user: User
    idempotency_key: str
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpdateUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("external_id", "email")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    email: str
    def __init__(self, external_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ("external_id", "deleted_events")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    deleted_events: int
    def __init__(self, external_id: _Optional[str] = ..., deleted_events: _Optional[int] = ...) -> None: ...

class ListUserEventsRequest(_message.Message):
    __slots__ = ("external_id", "page_size", "page_token")
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    external_id: str
    page_size: int
    page_token: str
    def __init__(self, external_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUserEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_tracking_pb2.Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
