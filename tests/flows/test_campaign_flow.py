"""The three real services together: a small user_ids campaign from CreateCampaign to completed,
watched live, with its events, messages and a read receipt that arrives after completion."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harness import error_reason, eventually, serve_system
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import message_service_pb2 as ms, message_service_pb2_grpc
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


async def _until(check):
    return await eventually(check, interval_s=0.1)


async def test_user_ids_campaign_from_create_to_completed(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        messages = message_service_pb2_grpc.MessageServiceStub(system.channel("delivery"))
        await directory.UpsertUsers(ds.UpsertUsersRequest(users=[
            directory_pb2.User(id="boss", name="Boss"),
            directory_pb2.User(id="ann", name="Ann"),
            directory_pb2.User(id="bob", name="Bob"),
        ]))
        custom = struct_pb2.Struct()
        custom.update({"origin": "flow"})
        created = (await campaigns.CreateCampaign(cs.CreateCampaignRequest(
            id="welcome", name="Welcome", sender_id="boss", user_ids=["ann", "bob", "ghost"],
            message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}, from {{ sender.name }}",
                                                        custom=custom),
            channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))).campaign
        assert [u.name for u in created.users] == ["Ann", "Bob", ""]

        watch = campaigns.WatchCampaign(cs.WatchCampaignRequest(id=created.id))
        updates = []

        async def follow():
            async for response in watch:
                updates.append(response.campaign)

        watcher = asyncio.create_task(follow())
        await campaigns.StartCampaign(cs.StartCampaignRequest(id=created.id))
        await asyncio.wait_for(watcher, 60)
        final = updates[-1]
        assert final.status == COMPLETED
        assert final.stats.progress == 1.0
        assert (final.stats.stats_users_sent, final.stats.recipients_skipped) == (2, 1)

        sent = (await messages.QueryMessages(ms.QueryMessagesRequest(
            filter=_struct({"created_by_campaign_id": created.id})))).messages
        assert sorted(m.text for m in sent) == ["Hi Ann, from Boss", "Hi Bob, from Boss"]

        # A read after completion still shows in GetCampaign.
        to_ann = next(m for m in sent if m.text.startswith("Hi Ann"))
        await messages.MarkRead(ms.MarkReadRequest(user_id="ann", cid=to_ann.cid))

        async def read_counted():
            campaign = (await campaigns.GetCampaign(cs.GetCampaignRequest(id=created.id))).campaign
            return campaign.stats.stats_users_read >= 1

        await _until(read_counted)


def _struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


async def test_start_past_the_monthly_capacity_is_resource_exhausted_with_retry_info(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, monthly_message_capacity=1) as system:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        await directory.UpsertUsers(ds.UpsertUsersRequest(users=[
            directory_pb2.User(id="boss", name="Boss"), directory_pb2.User(id="ann", name="Ann")]))
        for campaign_id in ("first", "second"):
            await campaigns.CreateCampaign(cs.CreateCampaignRequest(
                id=campaign_id, sender_id="boss", user_ids=["ann"],
                message_template=common_pb2.MessageTemplate(text="Hi"),
                channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))
        await campaigns.StartCampaign(cs.StartCampaignRequest(id="first"))
        await _until(lambda: _status_is(campaigns, "first", COMPLETED))

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await campaigns.StartCampaign(cs.StartCampaignRequest(id="second"))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(refused.value) == ("campaign.herald", "CAPACITY_EXHAUSTED")
        details = rpc_status.from_call(refused.value).details
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in details)
        second = (await campaigns.GetCampaign(cs.GetCampaignRequest(id="second"))).campaign
        assert second.status == campaign_pb2.CAMPAIGN_STATUS_DRAFT  # refused: still a draft, nothing sent


async def _status_is(campaigns, campaign_id: str, status: int) -> bool:
    reply = await campaigns.GetCampaign(cs.GetCampaignRequest(id=campaign_id))
    return reply.campaign.status == status
