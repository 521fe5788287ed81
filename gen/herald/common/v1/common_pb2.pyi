from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SenderMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENDER_MODE_UNSPECIFIED: _ClassVar[SenderMode]
    SENDER_MODE_EXCLUDE: _ClassVar[SenderMode]
    SENDER_MODE_INCLUDE: _ClassVar[SenderMode]

class SenderVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENDER_VISIBILITY_UNSPECIFIED: _ClassVar[SenderVisibility]
    SENDER_VISIBILITY_HIDDEN: _ClassVar[SenderVisibility]
    SENDER_VISIBILITY_ARCHIVED: _ClassVar[SenderVisibility]
SENDER_MODE_UNSPECIFIED: SenderMode
SENDER_MODE_EXCLUDE: SenderMode
SENDER_MODE_INCLUDE: SenderMode
SENDER_VISIBILITY_UNSPECIFIED: SenderVisibility
SENDER_VISIBILITY_HIDDEN: SenderVisibility
SENDER_VISIBILITY_ARCHIVED: SenderVisibility

class SortParam(_message.Message):
    __slots__ = ("field", "direction")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    direction: int
    def __init__(self, field: _Optional[str] = ..., direction: _Optional[int] = ...) -> None: ...

class Pager(_message.Message):
    __slots__ = ("next", "prev")
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    next: str
    prev: str
    def __init__(self, next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class ChannelMemberTemplate(_message.Message):
    __slots__ = ("user_id", "channel_role", "custom")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ROLE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    channel_role: str
    custom: _struct_pb2.Struct
    def __init__(self, user_id: _Optional[str] = ..., channel_role: _Optional[str] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ChannelTemplate(_message.Message):
    __slots__ = ("type", "id", "team", "custom", "members", "members_template")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    team: str
    custom: _struct_pb2.Struct
    members: _containers.RepeatedScalarFieldContainer[str]
    members_template: _containers.RepeatedCompositeFieldContainer[ChannelMemberTemplate]
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., team: _Optional[str] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., members: _Optional[_Iterable[str]] = ..., members_template: _Optional[_Iterable[_Union[ChannelMemberTemplate, _Mapping]]] = ...) -> None: ...

class MessageTemplate(_message.Message):
    __slots__ = ("text", "attachments", "custom", "poll_id", "searchable")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    POLL_ID_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    text: str
    attachments: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    custom: _struct_pb2.Struct
    poll_id: str
    searchable: bool
    def __init__(self, text: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., poll_id: _Optional[str] = ..., searchable: _Optional[bool] = ...) -> None: ...
