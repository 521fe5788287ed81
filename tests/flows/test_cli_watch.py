"""`herald watch` follows a campaign through the real services until it completes, and a bad
id ends with the service's status."""

from __future__ import annotations

import asyncio

from harness import serve_system, start_herald
from herald.campaign.v1 import campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc


async def test_watch_prints_progress_until_the_campaign_completes(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        await directory.UpsertUsers(ds.UpsertUsersRequest(users=[
            directory_pb2.User(id="boss", name="Boss"), directory_pb2.User(id="ann", name="Ann")]))
        await campaigns.CreateCampaign(cs.CreateCampaignRequest(
            id="hello", sender_id="boss", user_ids=["ann", "ghost"],
            message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
            channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))

        watch = await start_herald(system, "watch", "hello")
        assert watch.stdout is not None
        first = (await asyncio.wait_for(watch.stdout.readline(), 60)).decode()
        assert first.startswith("draft"), first  # the watcher saw the draft; now it runs
        await campaigns.StartCampaign(cs.StartCampaignRequest(id="hello"))
        out, err = await asyncio.wait_for(watch.communicate(), 60)
        assert watch.returncode == 0, err.decode()
        lines = out.decode().strip().splitlines()
        assert lines[-1].startswith("completed") and "100.0%" in lines[-1]
        assert "sent 1" in lines[-1] and "skipped 1" in lines[-1] and "of 2" in lines[-1]

        missing = await start_herald(system, "watch", "nope")
        _, err = await asyncio.wait_for(missing.communicate(), 30)
        assert missing.returncode == 1 and "NOT_FOUND" in err.decode()
