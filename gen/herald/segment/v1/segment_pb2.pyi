import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from herald.segment.v1 import directory_pb2 as _directory_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_TYPE_UNSPECIFIED: _ClassVar[SegmentType]
    SEGMENT_TYPE_USER: _ClassVar[SegmentType]
    SEGMENT_TYPE_CHANNEL: _ClassVar[SegmentType]
SEGMENT_TYPE_UNSPECIFIED: SegmentType
SEGMENT_TYPE_USER: SegmentType
SEGMENT_TYPE_CHANNEL: SegmentType

class Segment(_message.Message):
    __slots__ = ("id", "type", "name", "description", "filter", "all_users", "all_sender_channels", "size", "created_at", "updated_at", "deleted_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    ALL_SENDER_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: SegmentType
    name: str
    description: str
    filter: _struct_pb2.Struct
    all_users: bool
    all_sender_channels: bool
    size: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    deleted_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[SegmentType, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., all_users: _Optional[bool] = ..., all_sender_channels: _Optional[bool] = ..., size: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SegmentTarget(_message.Message):
    __slots__ = ("segment_id", "target_id", "created_at")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    target_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, segment_id: _Optional[str] = ..., target_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Recipient(_message.Message):
    __slots__ = ("target_id", "user", "channel")
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    target_id: str
    user: _directory_pb2.User
    channel: _directory_pb2.Channel
    def __init__(self, target_id: _Optional[str] = ..., user: _Optional[_Union[_directory_pb2.User, _Mapping]] = ..., channel: _Optional[_Union[_directory_pb2.Channel, _Mapping]] = ...) -> None: ...
