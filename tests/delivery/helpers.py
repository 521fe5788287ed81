"""Helpers of the delivery tests: stubs, users, campaign snapshots, waiting, paging."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import struct_pb2

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc
from herald.segment.v1 import directory_pb2, directory_service_pb2, directory_service_pb2_grpc
from herald.segment.v1 import segment_pb2, segment_service_pb2, segment_service_pb2_grpc

TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)


class Stubs:
    def __init__(self, segment: grpc.aio.Channel, delivery: grpc.aio.Channel) -> None:
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(segment)
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(segment)
        self.deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(delivery)
        self.messages = message_service_pb2_grpc.MessageServiceStub(delivery)


def struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


async def upsert_users(directory, ids, **fields) -> None:
    ids = list(ids)
    for start in range(0, len(ids), 10_000):
        users = [directory_pb2.User(id=i, name=fields.get("name", f"Name {i}"), **{
            k: v for k, v in fields.items() if k != "name"}) for i in ids[start:start + 10_000]]
        await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=users))


async def user_segment(segments, target_ids=(), *, all_users=False, segment_id="") -> str:
    response = await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
        id=segment_id, type=segment_pb2.SEGMENT_TYPE_USER, name="audience", all_users=all_users))
    ids = list(target_ids)
    for start in range(0, len(ids), 10_000):
        await segments.AddSegmentTargets(segment_service_pb2.AddSegmentTargetsRequest(
            id=response.segment.id, target_ids=ids[start:start + 10_000]))
    return response.segment.id


async def channel_segment(segments, cids) -> str:
    response = await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_CHANNEL, name="channels"))
    await segments.AddSegmentTargets(segment_service_pb2.AddSegmentTargetsRequest(
        id=response.segment.id, target_ids=list(cids)))
    return response.segment.id


def campaign(campaign_id="c1", *, sender_id="sender", text="Hi {{ receiver.name }} from {{ sender.name }}",
             user_ids=(), segment_ids=(), create_channels=True, channel_template=None, **fields) -> campaign_pb2.Campaign:
    if channel_template is None and create_channels:
        channel_template = common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}")
    message_template = fields.pop("message_template", None) or common_pb2.MessageTemplate(text=text)
    return campaign_pb2.Campaign(
        id=campaign_id, sender_id=sender_id, user_ids=list(user_ids), segment_ids=list(segment_ids),
        create_channels=create_channels, channel_template=channel_template, message_template=message_template,
        **fields)


async def start(stubs: Stubs, snapshot: campaign_pb2.Campaign) -> delivery_pb2.Delivery:
    response = await stubs.deliveries.StartDelivery(delivery_service_pb2.StartDeliveryRequest(campaign=snapshot))
    return response.delivery


async def wait_done(stubs: Stubs, campaign_id: str, timeout_s: float = 60.0) -> delivery_pb2.Delivery:
    """Follows WatchDelivery to the terminal state."""
    async def follow():
        last = None
        async for update in stubs.deliveries.WatchDelivery(
                delivery_service_pb2.WatchDeliveryRequest(campaign_id=campaign_id)):
            last = update.delivery
        return last
    last = await asyncio.wait_for(follow(), timeout_s)
    assert last is not None and last.status in TERMINAL, last
    return last


async def get(stubs: Stubs, campaign_id: str) -> delivery_pb2.Delivery:
    response = await stubs.deliveries.GetDelivery(delivery_service_pb2.GetDeliveryRequest(campaign_id=campaign_id))
    return response.delivery


async def all_recipients(stubs: Stubs, filter_: dict, limit: int = 10_000) -> list[delivery_pb2.RecipientOutcome]:
    return await _every_page(lambda cursor: stubs.deliveries.QueryRecipients(
        delivery_service_pb2.QueryRecipientsRequest(filter=struct(filter_), limit=limit, next=cursor)), "recipients")


async def all_messages(stubs: Stubs, filter_: dict, limit: int = 1000) -> list[delivery_pb2.Message]:
    return await _every_page(lambda cursor: stubs.messages.QueryMessages(
        message_service_pb2.QueryMessagesRequest(filter=struct(filter_), limit=limit, next=cursor)), "messages")


async def _every_page(fetch, field: str) -> list:
    """Follows `next` cursors from the first page to the last, collecting `field`."""
    out, cursor = [], ""
    while True:
        page = await fetch(cursor)
        out.extend(getattr(page, field))
        if not page.next:
            return out
        cursor = page.next




async def channels(stubs: Stubs, filter_: dict) -> list[directory_pb2.Channel]:
    out, cursor = [], ""
    while True:
        page = await stubs.directory.QueryChannels(directory_service_pb2.QueryChannelsRequest(
            filter=struct(filter_), limit=1000, next=cursor))
        out.extend(page.channels)
        if not page.next:
            return out
        cursor = page.next
