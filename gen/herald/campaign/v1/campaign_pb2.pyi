import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from herald.segment.v1 import directory_pb2 as _directory_pb2
from herald.segment.v1 import segment_pb2 as _segment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CampaignStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_STATUS_UNSPECIFIED: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_DRAFT: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_SCHEDULED: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_IN_PROGRESS: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_COMPLETED: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_STOPPED: _ClassVar[CampaignStatus]
    CAMPAIGN_STATUS_PAUSED: _ClassVar[CampaignStatus]

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_REQUESTED: _ClassVar[StopReason]
    STOP_REASON_STOP_AT: _ClassVar[StopReason]
    STOP_REASON_CAPACITY: _ClassVar[StopReason]
    STOP_REASON_ERROR: _ClassVar[StopReason]

class PreviewStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREVIEW_STATUS_UNSPECIFIED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_SENT: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_SKIPPED: _ClassVar[PreviewStatus]
    PREVIEW_STATUS_FAILED: _ClassVar[PreviewStatus]
CAMPAIGN_STATUS_UNSPECIFIED: CampaignStatus
CAMPAIGN_STATUS_DRAFT: CampaignStatus
CAMPAIGN_STATUS_SCHEDULED: CampaignStatus
CAMPAIGN_STATUS_IN_PROGRESS: CampaignStatus
CAMPAIGN_STATUS_COMPLETED: CampaignStatus
CAMPAIGN_STATUS_STOPPED: CampaignStatus
CAMPAIGN_STATUS_PAUSED: CampaignStatus
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_REQUESTED: StopReason
STOP_REASON_STOP_AT: StopReason
STOP_REASON_CAPACITY: StopReason
STOP_REASON_ERROR: StopReason
PREVIEW_STATUS_UNSPECIFIED: PreviewStatus
PREVIEW_STATUS_SENT: PreviewStatus
PREVIEW_STATUS_SKIPPED: PreviewStatus
PREVIEW_STATUS_FAILED: PreviewStatus

class CampaignStats(_message.Message):
    __slots__ = ("progress", "stats_started_at", "stats_completed_at", "stats_messages_sent", "stats_channels_created", "stats_users_sent", "stats_users_read", "recipients_total", "recipients_skipped", "recipients_failed", "send_rate", "eta")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STATS_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATS_COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    STATS_MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    STATS_CHANNELS_CREATED_FIELD_NUMBER: _ClassVar[int]
    STATS_USERS_SENT_FIELD_NUMBER: _ClassVar[int]
    STATS_USERS_READ_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    SEND_RATE_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    progress: float
    stats_started_at: _timestamp_pb2.Timestamp
    stats_completed_at: _timestamp_pb2.Timestamp
    stats_messages_sent: int
    stats_channels_created: int
    stats_users_sent: int
    stats_users_read: int
    recipients_total: int
    recipients_skipped: int
    recipients_failed: int
    send_rate: float
    eta: _timestamp_pb2.Timestamp
    def __init__(self, progress: _Optional[float] = ..., stats_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stats_completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stats_messages_sent: _Optional[int] = ..., stats_channels_created: _Optional[int] = ..., stats_users_sent: _Optional[int] = ..., stats_users_read: _Optional[int] = ..., recipients_total: _Optional[int] = ..., recipients_skipped: _Optional[int] = ..., recipients_failed: _Optional[int] = ..., send_rate: _Optional[float] = ..., eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Campaign(_message.Message):
    __slots__ = ("id", "name", "description", "sender_id", "segment_ids", "user_ids", "sender_mode", "sender_visibility", "message_template", "channel_template", "create_channels", "show_channels", "skip_push", "skip_webhook", "status", "stop_reason", "stop_message", "stats", "scheduled_for", "stop_at", "created_at", "updated_at", "users", "segments", "sender", "max_send_rate")
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
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
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
    status: CampaignStatus
    stop_reason: StopReason
    stop_message: str
    stats: CampaignStats
    scheduled_for: _timestamp_pb2.Timestamp
    stop_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    users: _containers.RepeatedCompositeFieldContainer[_directory_pb2.User]
    segments: _containers.RepeatedCompositeFieldContainer[_segment_pb2.Segment]
    sender: _directory_pb2.User
    max_send_rate: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., sender_id: _Optional[str] = ..., segment_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., sender_mode: _Optional[_Union[_common_pb2.SenderMode, str]] = ..., sender_visibility: _Optional[_Union[_common_pb2.SenderVisibility, str]] = ..., message_template: _Optional[_Union[_common_pb2.MessageTemplate, _Mapping]] = ..., channel_template: _Optional[_Union[_common_pb2.ChannelTemplate, _Mapping]] = ..., create_channels: _Optional[bool] = ..., show_channels: _Optional[bool] = ..., skip_push: _Optional[bool] = ..., skip_webhook: _Optional[bool] = ..., status: _Optional[_Union[CampaignStatus, str]] = ..., stop_reason: _Optional[_Union[StopReason, str]] = ..., stop_message: _Optional[str] = ..., stats: _Optional[_Union[CampaignStats, _Mapping]] = ..., scheduled_for: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., users: _Optional[_Iterable[_Union[_directory_pb2.User, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[_segment_pb2.Segment, _Mapping]]] = ..., sender: _Optional[_Union[_directory_pb2.User, _Mapping]] = ..., max_send_rate: _Optional[float] = ...) -> None: ...

class CampaignPreview(_message.Message):
    __slots__ = ("target_id", "status", "reason", "detail", "cid", "channel_exists", "channel", "member_ids", "message")
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_EXISTS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    target_id: str
    status: PreviewStatus
    reason: str
    detail: str
    cid: str
    channel_exists: bool
    channel: _directory_pb2.Channel
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    message: PreviewMessage
    def __init__(self, target_id: _Optional[str] = ..., status: _Optional[_Union[PreviewStatus, str]] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., cid: _Optional[str] = ..., channel_exists: _Optional[bool] = ..., channel: _Optional[_Union[_directory_pb2.Channel, _Mapping]] = ..., member_ids: _Optional[_Iterable[str]] = ..., message: _Optional[_Union[PreviewMessage, _Mapping]] = ...) -> None: ...

class PreviewMessage(_message.Message):
    __slots__ = ("id", "cid", "type", "text", "user_id", "attachments", "custom", "poll_id", "created_by_campaign_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    POLL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    cid: str
    type: str
    text: str
    user_id: str
    attachments: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    custom: _struct_pb2.Struct
    poll_id: str
    created_by_campaign_id: str
    def __init__(self, id: _Optional[str] = ..., cid: _Optional[str] = ..., type: _Optional[str] = ..., text: _Optional[str] = ..., user_id: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., poll_id: _Optional[str] = ..., created_by_campaign_id: _Optional[str] = ...) -> None: ...
