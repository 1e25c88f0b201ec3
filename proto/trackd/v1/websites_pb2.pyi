from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CheckOriginRequest(_message.Message):
    __slots__ = ("website_id", "origin")
    WEBSITE_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    website_id: str
    origin: str
    def __init__(self, website_id: _Optional[str] = ..., origin: _Optional[str] = ...) -> None: ...

class CheckOriginResponse(_message.Message):
    __slots__ = ("origin",)
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    origin: str
    def __init__(self, origin: _Optional[str] = ...) -> None: ...
