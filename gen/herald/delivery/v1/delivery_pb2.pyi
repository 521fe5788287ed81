import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from herald.campaign.v1 import campaign_pb2 as _campaign_pb2
from herald.segment.v1 import directory_pb2 as _directory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecipientStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECIPIENT_STATUS_UNSPECIFIED: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_SENT: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_SKIPPED: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_FAILED: _ClassVar[RecipientStatus]
RECIPIENT_STATUS_UNSPECIFIED: RecipientStatus
RECIPIENT_STATUS_SENT: RecipientStatus
RECIPIENT_STATUS_SKIPPED: RecipientStatus
RECIPIENT_STATUS_FAILED: RecipientStatus

class Delivery(_message.Message):
    __slots__ = ("campaign_id", "status", "stop_reason", "stop_message", "stats", "recipients_per_second", "created_at", "updated_at", "resumes")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    status: _campaign_pb2.CampaignStatus
    stop_reason: _campaign_pb2.StopReason
    stop_message: str
    stats: _campaign_pb2.CampaignStats
    recipients_per_second: float
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    resumes: int
    def __init__(self, campaign_id: _Optional[str] = ..., status: _Optional[_Union[_campaign_pb2.CampaignStatus, str]] = ..., stop_reason: _Optional[_Union[_campaign_pb2.StopReason, str]] = ..., stop_message: _Optional[str] = ..., stats: _Optional[_Union[_campaign_pb2.CampaignStats, _Mapping]] = ..., recipients_per_second: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resumes: _Optional[int] = ...) -> None: ...

class RecipientOutcome(_message.Message):
    __slots__ = ("campaign_id", "target_id", "status", "reason", "cid", "message_id", "created_at")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    target_id: str
    status: RecipientStatus
    reason: str
    cid: str
    message_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, campaign_id: _Optional[str] = ..., target_id: _Optional[str] = ..., status: _Optional[_Union[RecipientStatus, str]] = ..., reason: _Optional[str] = ..., cid: _Optional[str] = ..., message_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("id", "cid", "type", "text", "user_id", "attachments", "custom", "poll_id", "created_by_campaign_id", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    POLL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    cid: str
    type: str
    text: str
    user_id: str
    attachments: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    custom: _struct_pb2.Struct
    poll_id: str
    created_by_campaign_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., cid: _Optional[str] = ..., type: _Optional[str] = ..., text: _Optional[str] = ..., user_id: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., custom: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., poll_id: _Optional[str] = ..., created_by_campaign_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "id", "type", "created_at", "cid", "campaign", "message", "channel", "members", "user_ids")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    id: str
    type: str
    created_at: _timestamp_pb2.Timestamp
    cid: str
    campaign: _campaign_pb2.Campaign
    message: Message
    channel: _directory_pb2.Channel
    members: _containers.RepeatedCompositeFieldContainer[_directory_pb2.ChannelMember]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sequence: _Optional[int] = ..., id: _Optional[str] = ..., type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cid: _Optional[str] = ..., campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., channel: _Optional[_Union[_directory_pb2.Channel, _Mapping]] = ..., members: _Optional[_Iterable[_Union[_directory_pb2.ChannelMember, _Mapping]]] = ..., user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "webhook_id", "event", "url", "attempts", "last_error", "created_at", "destination", "device_id", "last_http_status", "first_attempt_at", "last_attempt_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    FIRST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    webhook_id: str
    event: Event
    url: str
    attempts: int
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    destination: str
    device_id: str
    last_http_status: int
    first_attempt_at: _timestamp_pb2.Timestamp
    last_attempt_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., url: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destination: _Optional[str] = ..., device_id: _Optional[str] = ..., last_http_status: _Optional[int] = ..., first_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
