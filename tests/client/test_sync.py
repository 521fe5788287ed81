"""`HeraldSyncClient`: the same calls from code without an event loop. The services run on this
test's loop, so the sync code runs in a thread (`asyncio.to_thread`), as it would in a program
of its own."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from harness import DEADLINE_S, TEST_SECRET
from herald.campaign.v1 import campaign_pb2
from services.client import HeraldSyncClient
from services.client.errors import InvalidArgument, NotFound

from client.conftest import campaign_fields


async def test_the_sync_client_runs_a_campaign_to_the_end(system_and_client):
    system, _ = system_and_client
    settings = replace(system.settings, api_secret=TEST_SECRET)

    def flow() -> None:
        with HeraldSyncClient.from_settings(settings) as herald:
            herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"},
                                 {"id": "bob", "name": "Bob"}])
            assert herald.import_users(({"id": f"u{i}", "name": f"U {i}"} for i in range(5)), chunk_size=2) == 5
            herald.create_segment("user", id="pair", name="Pair")
            assert herald.add_segment_targets("pair", ["ann", "bob", "ghost"]).size == 3
            assert herald.segment_target_exists("pair", "ann") is True
            for i in range(3):
                herald.create_campaign(campaign_fields(id=f"c{i}", segment_ids=["pair"]))
            assert [c.id for c in herald.iter_campaigns({"status": "draft"}, sort=["id"], page_size=2)] \
                == ["c0", "c1", "c2"]

            mark = herald.publish_event({"id": "mark", "type": "campaign.started", "campaign": {"id": "mark"}})
            events = herald.subscribe_events(["ann"], after_sequence=mark.sequence, types=["message.new"])
            herald.start_campaign("c0")
            seen = list(herald.watch_campaign("c0"))  # a plain iterator, ending with the campaign
            assert seen[-1].status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED
            assert (seen[-1].stats.stats_messages_sent, seen[-1].stats.recipients_skipped) == (2, 1)
            assert next(events).message.text == "Hi Ann from Boss"
            events.close()  # stops the stream on the client's loop

            preview = herald.preview_campaign("c1", receiver_id="ann")  # a draft of the same audience
            assert (preview.status, preview.message.text) == (campaign_pb2.PREVIEW_STATUS_SENT, "Hi Ann from Boss")
            [tested] = herald.send_test_campaign("c1", user_ids=["bob"]).recipients  # a real test message
            assert (tested.status, tested.message.text) == (campaign_pb2.PREVIEW_STATUS_SENT, "Hi Bob from Boss")

            skipped = herald.query_recipients({"campaign_id": "c0", "status": "skipped"})
            assert [(r.target_id, r.reason) for r in skipped.recipients] == [("ghost", "user_not_found")]
            first_user = next(iter(herald.iter_users(sort=["id"], page_size=1)))  # left unfinished
            assert first_user.id == "ann"
            with pytest.raises(NotFound):
                herald.get_campaign("nope")
            with pytest.raises(InvalidArgument) as caught:
                herald.create_campaign(campaign_fields(user_ids=["ann"], message_template={"text": "{{ x"}))
            assert [v.field for v in caught.value.field_violations] == ["message_template.text"]
            assert "watch_campaign" in dir(herald) and herald.timeout == 30.0

    await asyncio.wait_for(asyncio.to_thread(flow), DEADLINE_S)
