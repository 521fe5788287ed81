from google.protobuf import struct_pb2 as _struct_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from herald.segment.v1 import directory_pb2 as _directory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertUsersRequest(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    def __init__(self, users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ...) -> None: ...

class UpsertUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    def __init__(self, users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ...) -> None: ...

class GetUsersRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUsersResponse(_message.Message):
    __slots__ = ("users", "missing_ids")
    USERS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryUsersRequest(_message.Message):
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

class QueryUsersResponse(_message.Message):
    __slots__ = ("users", "next", "prev")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    next: str
    prev: str
    def __init__(self, users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class DeleteUsersRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteUsersResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...

class ImportUsersRequest(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    def __init__(self, users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ...) -> None: ...

class ImportUsersResponse(_message.Message):
    __slots__ = ("imported_count",)
    IMPORTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    imported_count: int
    def __init__(self, imported_count: _Optional[int] = ...) -> None: ...

class UpsertChannelsRequest(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Channel]
    def __init__(self, channels: _Optional[_Iterable[_Union[_directory_pb2.Channel, _Mapping]]] = ...) -> None: ...

class UpsertChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Channel]
    def __init__(self, channels: _Optional[_Iterable[_Union[_directory_pb2.Channel, _Mapping]]] = ...) -> None: ...

class QueryChannelsRequest(_message.Message):
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

class QueryChannelsResponse(_message.Message):
    __slots__ = ("channels", "next", "prev")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Channel]
    next: str
    prev: str
    def __init__(self, channels: _Optional[_Iterable[_Union[_directory_pb2.Channel, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class ChannelSpec(_message.Message):
    __slots__ = ("recipient_id", "receiver_id", "cid", "type", "id", "team", "custom", "members")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    receiver_id: str
    cid: str
    type: str
    id: str
    team: str
    custom: _struct_pb2.Struct
    members: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChannelMemberTemplate]
    def __init__(self, recipient_id: _Optional[str] = ..., receiver_id: _Optional[str] = ..., cid: _Optional[str] = ..., type: _Optional[str] = ..., id: _Optional[str] = ..., team: _Optional[str] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., members: _Optional[_Iterable[_Union[_common_pb2.ChannelMemberTemplate, _Mapping]]] = ...) -> None: ...

class EnsureChannelsRequest(_message.Message):
    __slots__ = ("campaign_id", "sender_id", "create_channels", "sender_mode", "sender_visibility", "show_channels", "channels", "dry_run")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SENDER_MODE_FIELD_NUMBER: _ClassVar[int]
    SENDER_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHOW_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    sender_id: str
    create_channels: bool
    sender_mode: _common_pb2.SenderMode
    sender_visibility: _common_pb2.SenderVisibility
    show_channels: bool
    channels: _containers.RepeatedCompositeFieldContainer[ChannelSpec]
    dry_run: bool
    def __init__(self, campaign_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., create_channels: _Optional[bool] = ..., sender_mode: _Optional[_Union[_common_pb2.SenderMode, str]] = ..., sender_visibility: _Optional[_Union[_common_pb2.SenderVisibility, str]] = ..., show_channels: _Optional[bool] = ..., channels: _Optional[_Iterable[_Union[ChannelSpec, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class EnsuredChannel(_message.Message):
    __slots__ = ("recipient_id", "cid", "created", "member_ids", "skip_reason", "channel", "existed")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    cid: str
    created: bool
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    skip_reason: str
    channel: _directory_pb2.Channel
    existed: bool
    def __init__(self, recipient_id: _Optional[str] = ..., cid: _Optional[str] = ..., created: _Optional[bool] = ..., member_ids: _Optional[_Iterable[str]] = ..., skip_reason: _Optional[str] = ..., channel: _Optional[_Union[_directory_pb2.Channel, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class EnsureChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[EnsuredChannel]
    def __init__(self, channels: _Optional[_Iterable[_Union[EnsuredChannel, _Mapping]]] = ...) -> None: ...

class UpsertDevicesRequest(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[_directory_pb2.Device, _Mapping]]] = ...) -> None: ...

class UpsertDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[_directory_pb2.Device, _Mapping]]] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_directory_pb2.Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[_directory_pb2.Device, _Mapping]]] = ...) -> None: ...

class DeleteDevicesRequest(_message.Message):
    __slots__ = ("user_id", "ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDevicesResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...
