from google.protobuf import struct_pb2 as _struct_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from herald.delivery.v1 import delivery_pb2 as _delivery_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryMessagesRequest(_message.Message):
    __slots__ = ("filter", "sort", "limit", "next", "prev")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    filter: _struct_pb2.Struct
    sort: _containers.RepeatedCompositeFieldContainer[_common_pb2.SortParam]
    limit: int
    next: str
    prev: str
    def __init__(self, filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., sort: _Optional[_Iterable[_Union[_common_pb2.SortParam, _Mapping]]] = ..., limit: _Optional[int] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class QueryMessagesResponse(_message.Message):
    __slots__ = ("messages", "next", "prev")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.Message]
    next: str
    prev: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_delivery_pb2.Message, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("user_id", "cid")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    cid: str
    def __init__(self, user_id: _Optional[str] = ..., cid: _Optional[str] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("marked_count",)
    MARKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    marked_count: int
    def __init__(self, marked_count: _Optional[int] = ...) -> None: ...

class SubscribeEventsRequest(_message.Message):
    __slots__ = ("user_ids", "after_sequence", "types")
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    after_sequence: int
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ..., after_sequence: _Optional[int] = ..., types: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _delivery_pb2.Event
    def __init__(self, event: _Optional[_Union[_delivery_pb2.Event, _Mapping]] = ...) -> None: ...

class QueryDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "limit", "next", "prev", "sort")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    filter: _struct_pb2.Struct
    limit: int
    next: str
    prev: str
    sort: _containers.RepeatedCompositeFieldContainer[_common_pb2.SortParam]
    def __init__(self, filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., limit: _Optional[int] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ..., sort: _Optional[_Iterable[_Union[_common_pb2.SortParam, _Mapping]]] = ...) -> None: ...

class QueryDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next", "prev")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.DeadLetter]
    next: str
    prev: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[_delivery_pb2.DeadLetter, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("ids", "all", "filter")
    IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    filter: _struct_pb2.Struct
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...

class GetPushConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPushConfigResponse(_message.Message):
    __slots__ = ("vapid_public_key",)
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    vapid_public_key: str
    def __init__(self, vapid_public_key: _Optional[str] = ...) -> None: ...
