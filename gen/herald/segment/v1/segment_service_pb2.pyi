from google.protobuf import struct_pb2 as _struct_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from herald.segment.v1 import segment_pb2 as _segment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateSegmentRequest(_message.Message):
    __slots__ = ("id", "type", "name", "description", "filter", "all_users", "all_sender_channels")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    ALL_SENDER_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: _segment_pb2.SegmentType
    name: str
    description: str
    filter: _struct_pb2.Struct
    all_users: bool
    all_sender_channels: bool
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[_segment_pb2.SegmentType, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., all_users: _Optional[bool] = ..., all_sender_channels: _Optional[bool] = ...) -> None: ...

class CreateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class UpdateSegmentRequest(_message.Message):
    __slots__ = ("id", "name", "description", "filter")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    filter: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpdateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteSegmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QuerySegmentsRequest(_message.Message):
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

class QuerySegmentsResponse(_message.Message):
    __slots__ = ("segments", "next", "prev")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[_segment_pb2.Segment]
    next: str
    prev: str
    def __init__(self, segments: _Optional[_Iterable[_Union[_segment_pb2.Segment, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class AddSegmentTargetsRequest(_message.Message):
    __slots__ = ("id", "target_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    target_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., target_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AddSegmentTargetsResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class DeleteSegmentTargetsRequest(_message.Message):
    __slots__ = ("id", "target_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    target_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., target_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteSegmentTargetsResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class SegmentTargetExistsRequest(_message.Message):
    __slots__ = ("id", "target_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    target_id: str
    def __init__(self, id: _Optional[str] = ..., target_id: _Optional[str] = ...) -> None: ...

class SegmentTargetExistsResponse(_message.Message):
    __slots__ = ("exists",)
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    def __init__(self, exists: _Optional[bool] = ...) -> None: ...

class QuerySegmentTargetsRequest(_message.Message):
    __slots__ = ("id", "filter", "sort", "limit", "next", "prev")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    id: str
    filter: _struct_pb2.Struct
    sort: _containers.RepeatedCompositeFieldContainer[_common_pb2.SortParam]
    limit: int
    next: str
    prev: str
    def __init__(self, id: _Optional[str] = ..., filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., sort: _Optional[_Iterable[_Union[_common_pb2.SortParam, _Mapping]]] = ..., limit: _Optional[int] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class QuerySegmentTargetsResponse(_message.Message):
    __slots__ = ("targets", "next", "prev")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[_segment_pb2.SegmentTarget]
    next: str
    prev: str
    def __init__(self, targets: _Optional[_Iterable[_Union[_segment_pb2.SegmentTarget, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class CountRecipientsRequest(_message.Message):
    __slots__ = ("segment_ids", "user_ids", "sender_id")
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    sender_id: str
    def __init__(self, segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_id: _Optional[str] = ...) -> None: ...

class CountRecipientsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class StreamRecipientsRequest(_message.Message):
    __slots__ = ("segment_ids", "user_ids", "sender_id", "cursor", "batch_size", "last_target_id")
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LAST_TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    sender_id: str
    cursor: str
    batch_size: int
    last_target_id: str
    def __init__(self, segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_id: _Optional[str] = ..., cursor: _Optional[str] = ..., batch_size: _Optional[int] = ..., last_target_id: _Optional[str] = ...) -> None: ...

class StreamRecipientsResponse(_message.Message):
    __slots__ = ("recipients", "skipped_ids", "cursor", "target_type")
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_IDS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    recipients: _containers.RepeatedCompositeFieldContainer[_segment_pb2.Recipient]
    skipped_ids: _containers.RepeatedScalarFieldContainer[str]
    cursor: str
    target_type: _segment_pb2.SegmentType
    def __init__(self, recipients: _Optional[_Iterable[_Union[_segment_pb2.Recipient, _Mapping]]] = ..., skipped_ids: _Optional[_Iterable[str]] = ..., cursor: _Optional[str] = ..., target_type: _Optional[_Union[_segment_pb2.SegmentType, str]] = ...) -> None: ...

class SplitRecipientsRequest(_message.Message):
    __slots__ = ("segment_ids", "user_ids", "sender_id", "parts")
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    sender_id: str
    parts: int
    def __init__(self, segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_id: _Optional[str] = ..., parts: _Optional[int] = ...) -> None: ...

class SplitRecipientsResponse(_message.Message):
    __slots__ = ("boundaries",)
    BOUNDARIES_FIELD_NUMBER: _ClassVar[int]
    boundaries: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, boundaries: _Optional[_Iterable[str]] = ...) -> None: ...
