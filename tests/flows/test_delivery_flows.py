"""End to end through the three real services: campaigns created and started on campaign_svc,
sent by delivery_svc, channels found or created by segment_svc."""

from __future__ import annotations

import asyncio

import pytest

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, message_service_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from harness import eventually, serve_system

from delivery.helpers import (Stubs, all_messages, all_recipients, channel_segment, channels, get, struct,
                              upsert_users, user_segment)

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
ONE_TO_ONE = common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}")


class System:
    def __init__(self, system) -> None:
        self.raw = system
        self.stubs = Stubs(system.channel("segment"), system.channel("delivery"))
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))

    async def run(self, **fields) -> campaign_pb2.Campaign:
        """Creates and starts a campaign, then watches it to its end."""
        campaign_id = await self.begin(**fields)
        return await self.finish(campaign_id)

    async def begin(self, **fields) -> str:
        fields.setdefault("sender_id", "sender")
        fields.setdefault("message_template", common_pb2.MessageTemplate(text="Hi {{ receiver.name }}!"))
        created = await self.campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(**fields))
        await self.campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=created.campaign.id))
        return created.campaign.id

    async def finish(self, campaign_id: str, timeout_s: float = 60) -> campaign_pb2.Campaign:
        async def follow():
            last = None
            async for update in self.campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id)):
                last = update.campaign
            return last
        return await asyncio.wait_for(follow(), timeout_s)

    async def get(self, campaign_id: str) -> campaign_pb2.Campaign:
        return (await self.campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id=campaign_id))).campaign


@pytest.fixture
async def make(new_db_url, tmp_path):
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        async def start(**overrides) -> System:
            return System(await stack.enter_async_context(serve_system(new_db_url, tmp_path, **overrides)))
        yield start


async def test_user_segment_campaign_creates_one_to_one_channels_with_receiver_templates(make):
    system = await make()
    stubs = system.stubs
    users = [f"u{i:03d}" for i in range(40)]
    await upsert_users(stubs.directory, ["sender", *users], name="ignored")
    await stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id=u, name=f"Friend {u}") for u in users] + [directory_pb2.User(id="sender", name="Ada")]))
    segment_id = await user_segment(stubs.segments, users)
    campaign = await system.run(segment_ids=[segment_id], create_channels=True, channel_template=ONE_TO_ONE,
                                message_template=common_pb2.MessageTemplate(
                                    text="Hi {{ receiver.name }}, {{ sender.name }} here"))
    assert campaign.status == COMPLETED
    s = campaign.stats
    assert (s.progress, s.recipients_total, s.stats_messages_sent, s.stats_channels_created, s.stats_users_sent) == (
        1.0, 40, 40, 40, 40)
    messages = {m.cid: m for m in await all_messages(stubs, {"created_by_campaign_id": campaign.id})}
    assert messages["messaging:u007-sender"].text == "Hi Friend u007, Ada here"
    assert dict(messages["messaging:u007-sender"].custom) == {"campaign_id": campaign.id}
    made = {c.cid: c for c in await channels(stubs, {"type": "messaging"})}
    assert len(made) == 40
    assert {m.user_id for m in made["messaging:u007-sender"].members} == {"u007", "sender"}
    assert made["messaging:u007-sender"].created_by_id == "sender"


@pytest.mark.parametrize("mode", [common_pb2.SENDER_MODE_UNSPECIFIED, common_pb2.SENDER_MODE_INCLUDE,
                                  common_pb2.SENDER_MODE_EXCLUDE])
@pytest.mark.parametrize("visibility", [common_pb2.SENDER_VISIBILITY_UNSPECIFIED, common_pb2.SENDER_VISIBILITY_HIDDEN,
                                        common_pb2.SENDER_VISIBILITY_ARCHIVED])
async def test_sender_mode_and_visibility(make, mode, visibility):
    system = await make()
    stubs = system.stubs
    await upsert_users(stubs.directory, ["sender", "old", "new"])
    # "old" already has a channel with the sender's channel id, but without the sender in it.
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="messaging", id="old-sender", members=[directory_pb2.ChannelMember(user_id="old")])]))
    campaign = await system.run(user_ids=["old", "new"], create_channels=True, channel_template=ONE_TO_ONE,
                                sender_mode=mode, sender_visibility=visibility)
    assert campaign.status == COMPLETED and campaign.stats.stats_messages_sent == 2
    assert campaign.stats.stats_channels_created == 1
    made = {c.cid: c for c in await channels(stubs, {"type": "messaging"})}
    old = {m.user_id: m for m in made["messaging:old-sender"].members}
    new = {m.user_id: m for m in made["messaging:new-sender"].members}
    assert ("sender" in old) == (mode == common_pb2.SENDER_MODE_INCLUDE)
    assert ("sender" in new) == (mode != common_pb2.SENDER_MODE_EXCLUDE)
    if "sender" in new:
        assert new["sender"].hidden == (visibility == common_pb2.SENDER_VISIBILITY_HIDDEN)
        assert new["sender"].HasField("archived_at") == (visibility == common_pb2.SENDER_VISIBILITY_ARCHIVED)
    assert not new["new"].hidden and not new["new"].HasField("archived_at")
    # Whatever the membership, the message is the sender's.
    authors = {m.user_id for m in await all_messages(stubs, {"created_by_campaign_id": campaign.id})}
    assert authors == {"sender"}


@pytest.mark.parametrize("show_channels", [False, True])
async def test_show_channels_unhides_the_channel_for_the_receiver(make, show_channels):
    system = await make()
    stubs = system.stubs
    await upsert_users(stubs.directory, ["sender", "r"])
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="messaging", id="r-sender", members=[
            directory_pb2.ChannelMember(user_id="r", hidden=True), directory_pb2.ChannelMember(user_id="sender")])]))
    campaign = await system.run(user_ids=["r"], channel_template=ONE_TO_ONE, show_channels=show_channels)
    assert campaign.stats.stats_messages_sent == 1
    [channel] = await channels(stubs, {"cid": "messaging:r-sender"})
    receiver = next(m for m in channel.members if m.user_id == "r")
    assert receiver.hidden == (not show_channels)


async def test_channel_segment_campaign(make):
    system = await make()
    stubs = system.stubs
    await upsert_users(stubs.directory, ["sender", "a", "b", "c", "d"])
    member = lambda *ids: [directory_pb2.ChannelMember(user_id=i) for i in ids]  # noqa: E731
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="team", id="red", custom=struct({"topic": "red things"}),
                              members=member("sender", "a", "b")),
        directory_pb2.Channel(type="team", id="blue", members=member("c", "d", "a"))]))
    segment_id = await channel_segment(stubs.segments, ["team:red", "team:blue"])
    campaign = await system.run(segment_ids=[segment_id], message_template=common_pb2.MessageTemplate(
        text="{{ sender.id }} to {{ channel.id }}{% if channel.custom.topic %} about {{ channel.custom.topic }}{% endif %}"))
    assert campaign.status == COMPLETED
    s = campaign.stats
    # One message per channel; members reached: a, b (red, not the sender) and c, d, a (blue).
    assert (s.stats_messages_sent, s.stats_users_sent, s.stats_channels_created, s.recipients_total) == (2, 5, 0, 2)
    texts = {m.cid: m.text for m in await all_messages(stubs, {"created_by_campaign_id": campaign.id})}
    assert texts == {"team:red": "sender to red about red things", "team:blue": "sender to blue"}


async def test_user_ids_campaign_with_unknown_users(make):
    system = await make()
    stubs = system.stubs
    await upsert_users(stubs.directory, ["sender", "a", "b"])
    campaign = await system.run(user_ids=["a", "ghost", "b", "phantom"], create_channels=True,
                                channel_template=ONE_TO_ONE)
    assert campaign.status == COMPLETED
    s = campaign.stats
    assert (s.recipients_total, s.recipients_skipped, s.stats_messages_sent, s.progress) == (4, 2, 2, 1.0)
    skipped = await all_recipients(stubs, {"campaign_id": campaign.id, "status": "skipped"})
    assert [(r.target_id, r.reason) for r in skipped] == [("ghost", "user_not_found"), ("phantom", "user_not_found")]


async def test_stop_midway(make):
    system = await make(delivery_batch_size=100, max_send_rate=500)
    stubs = system.stubs
    users = [f"u{i:04d}" for i in range(3000)]
    await upsert_users(stubs.directory, ["sender", *users])
    segment_id = await user_segment(stubs.segments, users)
    campaign_id = await system.begin(segment_ids=[segment_id], create_channels=True, channel_template=ONE_TO_ONE)
    await eventually(lambda: get(stubs, campaign_id), lambda d: d.stats.stats_messages_sent >= 200,
                     what="200 messages sent")
    await system.campaigns.StopCampaign(campaign_service_pb2.StopCampaignRequest(id=campaign_id))
    final = await system.finish(campaign_id)
    assert (final.status, final.stop_reason) == (campaign_pb2.CAMPAIGN_STATUS_STOPPED,
                                                  campaign_pb2.STOP_REASON_REQUESTED)
    await asyncio.sleep(0.5)
    delivery = await get(stubs, campaign_id)
    sent = delivery.stats.stats_messages_sent
    assert delivery.status == campaign_pb2.CAMPAIGN_STATUS_STOPPED and 200 <= sent < 3000
    assert len(await all_messages(stubs, {"created_by_campaign_id": campaign_id})) == sent
    log = await all_recipients(stubs, {"campaign_id": campaign_id})
    assert len(log) == sent and all(r.status == delivery_pb2.RECIPIENT_STATUS_SENT for r in log)
    assert (await system.get(campaign_id)).stats.stats_messages_sent == sent
    # Channels ensured ahead of the writer when the stop landed are counted, on the campaign too.
    made = await channels(stubs, {"created_by_id": "sender"})
    assert len(made) > sent
    assert delivery.stats.stats_channels_created == len(made)
    assert (await system.get(campaign_id)).stats.stats_channels_created == len(made)


async def test_read_receipts(make):
    system = await make()
    stubs = system.stubs
    await upsert_users(stubs.directory, ["sender", "a", "b", "c"])
    campaign = await system.run(user_ids=["a", "b", "c"], create_channels=True, channel_template=ONE_TO_ONE)
    assert campaign.stats.stats_users_read == 0
    for reader in ("a", "b", "b"):
        await stubs.messages.MarkRead(message_service_pb2.MarkReadRequest(user_id=reader, cid=f"messaging:{reader}-sender"))
    await stubs.messages.MarkRead(message_service_pb2.MarkReadRequest(user_id="sender", cid="messaging:c-sender"))
    assert (await get(stubs, campaign.id)).stats.stats_users_read == 2
    # Reads after completion show on the campaign too.
    assert (await system.get(campaign.id)).stats.stats_users_read == 2

