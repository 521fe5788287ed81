from google.protobuf import struct_pb2 as _struct_pb2
from herald.campaign.v1 import campaign_pb2 as _campaign_pb2
from herald.common.v1 import common_pb2 as _common_pb2
from herald.delivery.v1 import delivery_pb2 as _delivery_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartDeliveryRequest(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class StartDeliveryResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _delivery_pb2.Delivery
    def __init__(self, delivery: _Optional[_Union[_delivery_pb2.Delivery, _Mapping]] = ...) -> None: ...

class StopDeliveryRequest(_message.Message):
    __slots__ = ("campaign_id", "reason", "message")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    reason: _campaign_pb2.StopReason
    message: str
    def __init__(self, campaign_id: _Optional[str] = ..., reason: _Optional[_Union[_campaign_pb2.StopReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class StopDeliveryResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _delivery_pb2.Delivery
    def __init__(self, delivery: _Optional[_Union[_delivery_pb2.Delivery, _Mapping]] = ...) -> None: ...

class GetDeliveryRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetDeliveryResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _delivery_pb2.Delivery
    def __init__(self, delivery: _Optional[_Union[_delivery_pb2.Delivery, _Mapping]] = ...) -> None: ...

class BatchGetDeliveriesRequest(_message.Message):
    __slots__ = ("campaign_ids",)
    CAMPAIGN_IDS_FIELD_NUMBER: _ClassVar[int]
    campaign_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, campaign_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_delivery_pb2.Delivery, _Mapping]]] = ...) -> None: ...

class WatchDeliveryRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class WatchDeliveryResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _delivery_pb2.Delivery
    def __init__(self, delivery: _Optional[_Union[_delivery_pb2.Delivery, _Mapping]] = ...) -> None: ...

class QueryRecipientsRequest(_message.Message):
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

class QueryRecipientsResponse(_message.Message):
    __slots__ = ("recipients", "next", "prev")
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    recipients: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.RecipientOutcome]
    next: str
    prev: str
    def __init__(self, recipients: _Optional[_Iterable[_Union[_delivery_pb2.RecipientOutcome, _Mapping]]] = ..., next: _Optional[str] = ..., prev: _Optional[str] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _delivery_pb2.Event
    def __init__(self, event: _Optional[_Union[_delivery_pb2.Event, _Mapping]] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _delivery_pb2.Event
    def __init__(self, event: _Optional[_Union[_delivery_pb2.Event, _Mapping]] = ...) -> None: ...

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

class PreviewDeliveryRequest(_message.Message):
    __slots__ = ("campaign", "receiver_id", "cid")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_ID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    receiver_id: str
    cid: str
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., receiver_id: _Optional[str] = ..., cid: _Optional[str] = ...) -> None: ...

class PreviewDeliveryResponse(_message.Message):
    __slots__ = ("preview",)
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    preview: _campaign_pb2.CampaignPreview
    def __init__(self, preview: _Optional[_Union[_campaign_pb2.CampaignPreview, _Mapping]] = ...) -> None: ...

class PauseDeliveryRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class PauseDeliveryResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _delivery_pb2.Delivery
    def __init__(self, delivery: _Optional[_Union[_delivery_pb2.Delivery, _Mapping]] = ...) -> None: ...

class SendTestDeliveryRequest(_message.Message):
    __slots__ = ("campaign", "user_ids", "cids", "request_id")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    CIDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    cids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., user_ids: _Optional[_Iterable[str]] = ..., cids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SendTestDeliveryResponse(_message.Message):
    __slots__ = ("recipients",)
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    recipients: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.CampaignPreview]
    def __init__(self, recipients: _Optional[_Iterable[_Union[_campaign_pb2.CampaignPreview, _Mapping]]] = ...) -> None: ...
