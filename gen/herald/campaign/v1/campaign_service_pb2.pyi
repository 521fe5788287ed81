import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from herald.campaign.v1 import campaign_pb2 as _campaign_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCampaignRequest(_message.Message):
    __slots__ = ("id", "name", "description", "sender_id", "segment_ids", "user_ids", "sender_mode", "sender_visibility", "message_template", "channel_template", "create_channels", "show_channels", "skip_push", "skip_webhook", "max_send_rate")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_MODE_FIELD_NUMBER: _ClassVar[int]
    SENDER_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SHOW_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PUSH_FIELD_NUMBER: _ClassVar[int]
    SKIP_WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    MAX_SEND_RATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    sender_id: str
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    sender_mode: _common_pb2.SenderMode
    sender_visibility: _common_pb2.SenderVisibility
    message_template: _common_pb2.MessageTemplate
    channel_template: _common_pb2.ChannelTemplate
    create_channels: bool
    show_channels: bool
    skip_push: bool
    skip_webhook: bool
    max_send_rate: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., sender_id: _Optional[str] = ..., segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_mode: _Optional[_Union[_common_pb2.SenderMode, str]] = ..., sender_visibility: _Optional[_Union[_common_pb2.SenderVisibility, str]] = ..., message_template: _Optional[_Union[_common_pb2.MessageTemplate, _Mapping]] = ..., channel_template: _Optional[_Union[_common_pb2.ChannelTemplate, _Mapping]] = ..., create_channels: _Optional[bool] = ..., show_channels: _Optional[bool] = ..., skip_push: _Optional[bool] = ..., skip_webhook: _Optional[bool] = ..., max_send_rate: _Optional[float] = ...) -> None: ...

class CreateCampaignResponse(_message.Message):
    __slots__ = ("campaign", "users")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    users: _common_pb2.Pager
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., users: _Optional[_Union[_common_pb2.Pager, _Mapping]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("id", "limit", "next", "prev")
    ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    id: str
    limit: int
    next: str
    prev: str
    def __init__(self, id: _Optional[str] = ..., limit: _Optional[int] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class GetCampaignResponse(_message.Message):
    __slots__ = ("campaign", "users")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    users: _common_pb2.Pager
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., users: _Optional[_Union[_common_pb2.Pager, _Mapping]] = ...) -> None: ...

class UpdateCampaignRequest(_message.Message):
    __slots__ = ("id", "name", "description", "sender_id", "segment_ids", "user_ids", "sender_mode", "sender_visibility", "message_template", "channel_template", "create_channels", "show_channels", "skip_push", "skip_webhook", "max_send_rate")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_MODE_FIELD_NUMBER: _ClassVar[int]
    SENDER_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SHOW_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PUSH_FIELD_NUMBER: _ClassVar[int]
    SKIP_WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    MAX_SEND_RATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    sender_id: str
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    sender_mode: _common_pb2.SenderMode
    sender_visibility: _common_pb2.SenderVisibility
    message_template: _common_pb2.MessageTemplate
    channel_template: _common_pb2.ChannelTemplate
    create_channels: bool
    show_channels: bool
    skip_push: bool
    skip_webhook: bool
    max_send_rate: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., sender_id: _Optional[str] = ..., segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_mode: _Optional[_Union[_common_pb2.SenderMode, str]] = ..., sender_visibility: _Optional[_Union[_common_pb2.SenderVisibility, str]] = ..., message_template: _Optional[_Union[_common_pb2.MessageTemplate, _Mapping]] = ..., channel_template: _Optional[_Union[_common_pb2.ChannelTemplate, _Mapping]] = ..., create_channels: _Optional[bool] = ..., show_channels: _Optional[bool] = ..., skip_push: _Optional[bool] = ..., skip_webhook: _Optional[bool] = ..., max_send_rate: _Optional[float] = ...) -> None: ...

class UpdateCampaignResponse(_message.Message):
    __slots__ = ("campaign", "users")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    users: _common_pb2.Pager
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., users: _Optional[_Union[_common_pb2.Pager, _Mapping]] = ...) -> None: ...

class DeleteCampaignRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteCampaignResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryCampaignsRequest(_message.Message):
    __slots__ = ("filter", "sort", "limit", "next", "prev", "user_limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    USER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: _struct_pb2.Struct
    sort: _containers.RepeatedCompositeFieldContainer[_common_pb2.SortParam]
    limit: int
    next: str
    prev: str
    user_limit: int
    def __init__(self, filter: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., sort: _Optional[_Iterable[_Union[_common_pb2.SortParam, _Mapping]]] = ..., limit: _Optional[int] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ..., user_limit: _Optional[int] = ...) -> None: ...

class QueryCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "next", "prev")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.Campaign]
    next: str
    prev: str
    def __init__(self, campaigns: _Optional[_Iterable[_Union[_campaign_pb2.Campaign, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class StartCampaignRequest(_message.Message):
    __slots__ = ("id", "scheduled_for", "stop_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    scheduled_for: _timestamp_pb2.Timestamp
    stop_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., scheduled_for: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartCampaignResponse(_message.Message):
    __slots__ = ("campaign", "users")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    users: _common_pb2.Pager
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., users: _Optional[_Union[_common_pb2.Pager, _Mapping]] = ...) -> None: ...

class StopCampaignRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class WatchCampaignRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("month",)
    MONTH_FIELD_NUMBER: _ClassVar[int]
    month: str
    def __init__(self, month: _Optional[str] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("month", "messages_sent", "capacity", "remaining")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    month: str
    messages_sent: int
    capacity: int
    remaining: int
    def __init__(self, month: _Optional[str] = ..., messages_sent: _Optional[int] = ..., capacity: _Optional[int] = ..., remaining: _Optional[int] = ...) -> None: ...

class PreviewCampaignRequest(_message.Message):
    __slots__ = ("id", "receiver_id", "cid")
    ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    id: str
    receiver_id: str
    cid: str
    def __init__(self, id: _Optional[str] = ..., receiver_id: _Optional[str] = ..., cid: _Optional[str] = ...) -> None: ...

class PreviewCampaignResponse(_message.Message):
    __slots__ = ("preview",)
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    preview: _campaign_pb2.CampaignPreview
    def __init__(self, preview: _Optional[_Union[_campaign_pb2.CampaignPreview, _Mapping]] = ...) -> None: ...

class PauseCampaignRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PauseCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class ResumeCampaignRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class SendTestCampaignRequest(_message.Message):
    __slots__ = ("id", "user_ids", "cids", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    CIDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    cids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, id: _Optional[str] = ..., user_ids: _Optional[_Iterable[str]] = ..., cids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SendTestCampaignResponse(_message.Message):
    __slots__ = ("recipients", "request_id")
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    recipients: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.CampaignPreview]
    request_id: str
    def __init__(self, recipients: _Optional[_Iterable[_Union[_campaign_pb2.CampaignPreview, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...
