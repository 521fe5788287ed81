"""Deliveries, recipients, messages, events, dead letters and the push config through
`HeraldClient`, against the real services."""

from __future__ import annotations

import asyncio

from delivery.receiver import receiving
from harness import DEADLINE_S, eventually
from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.kit.config import new_webhook_secret

from client.conftest import run_campaign, users

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


async def test_deliveries_and_their_recipients_with_reasons(herald):
    await users(herald, "boss", "ann", "bob")
    await run_campaign(herald, "hello", ["ann", "bob", "ghost", "nobody"])
    await run_campaign(herald, "again", ["ann"])

    delivery = await herald.get_delivery("hello")
    assert (delivery.campaign_id, delivery.status) == ("hello", COMPLETED)
    assert (delivery.stats.stats_users_sent, delivery.stats.recipients_skipped) == (2, 2)
    both = await herald.batch_get_deliveries(["hello", "again"])
    assert sorted(d.campaign_id for d in both) == ["again", "hello"] and all(d.status == COMPLETED for d in both)

    async def follow() -> list[delivery_pb2.Delivery]:
        return [d async for d in herald.watch_delivery("hello")]

    assert [d.status for d in await asyncio.wait_for(follow(), DEADLINE_S)] == [COMPLETED]

    skipped = await herald.query_recipients({"campaign_id": "hello", "status": "skipped"})
    assert [(r.target_id, r.reason) for r in skipped.recipients] == [("ghost", "user_not_found"),
                                                                     ("nobody", "user_not_found")]
    sent = [r async for r in herald.iter_recipients({"campaign_id": "hello", "status": "sent"}, page_size=1)]
    assert [(r.target_id, r.cid) for r in sent] == [("ann", "messaging:ann-boss"), ("bob", "messaging:bob-boss")]
    assert all(r.message_id and r.status == delivery_pb2.RECIPIENT_STATUS_SENT for r in sent)
    everyone = [r.target_id async for r in herald.iter_recipients({"campaign_id": {"$in": ["hello", "again"]}},
                                                                  sort=["-target_id"])]
    assert sorted(everyone) == ["ann", "ann", "bob", "ghost", "nobody"]


async def test_messages_mark_read_publish_event_and_push_config(herald):
    await users(herald, "boss", "ann", "bob")
    await run_campaign(herald, "hello", ["ann", "bob"])

    page = await herald.query_messages({"created_by_campaign_id": "hello"}, sort=["id"])
    assert sorted(m.text for m in page.messages) == ["Hi Ann from Boss", "Hi Bob from Boss"]
    anns = [m async for m in herald.iter_messages({"cid": "messaging:ann-boss"}, page_size=1)]
    assert [(m.user_id, m.type, m.created_by_campaign_id) for m in anns] == [("boss", "regular", "hello")]

    assert await herald.mark_read("ann", "messaging:ann-boss") == 1
    read = await eventually(lambda: herald.get_delivery("hello"), lambda d: d.stats.stats_users_read == 1,
                            what="stats_users_read after mark_read")
    assert read.stats.stats_users_read == 1

    event = {"id": "ev-started-x", "type": "campaign.started", "campaign": {"id": "x", "name": "X"}}
    stored = await herald.publish_event(event)
    assert stored.id == "ev-started-x" and stored.sequence > 0 and stored.campaign.name == "X"
    assert (await herald.publish_event(delivery_pb2.Event(**{**event, "campaign": {"id": "x"}}))).sequence \
        == stored.sequence  # idempotent by id

    config = await herald.get_push_config()
    assert len(config.vapid_public_key) == 87  # a P-256 point in base64url, as browsers take it


async def test_subscribe_events_hears_a_message_for_a_subscribed_user(herald):
    await users(herald, "boss", "ann", "bob")
    mark = await herald.publish_event({"id": "mark", "type": "campaign.started", "campaign": {"id": "mark"}})
    # After the mark's sequence: nothing sent after it is missed, however late the stream opens.
    events = herald.subscribe_events(["ann"], after_sequence=mark.sequence, types=["message.new"])
    await run_campaign(herald, "hello", ["ann", "bob"])

    event = await asyncio.wait_for(anext(events), DEADLINE_S)
    assert (event.type, event.cid, event.message.text) == ("message.new", "messaging:ann-boss", "Hi Ann from Boss")
    assert "ann" in event.user_ids and event.sequence > mark.sequence
    await events.aclose()  # cancels the stream


async def test_dead_letters_query_iterate_and_replay(make_system):
    async with receiving() as receiver:
        receiver.answer("/hook", 400)
        _, herald = await make_system(webhook_url=f"{receiver.url}/hook", webhook_secret=new_webhook_secret(),
                                      webhook_backoff_s=0.02, webhook_backoff_max_s=0.1)
        await users(herald, "boss", "ann", "bob")
        await run_campaign(herald, "hello", ["ann", "bob"])
        # campaign.started and .completed, and a channel.created and a message.new for each user.
        letters = await eventually(lambda: herald.query_dead_letters(), lambda r: len(r.dead_letters) == 6,
                                   what="6 dead letters")
        assert all((d.destination, d.last_http_status) == ("webhook", 400) for d in letters.dead_letters)

        messages = [d async for d in herald.iter_dead_letters({"type": "message.new"}, sort=["-created_at"],
                                                              page_size=1)]
        assert sorted(d.event.message.text for d in messages) == ["Hi Ann from Boss", "Hi Bob from Boss"]
        assert len((await herald.query_dead_letters({"campaign_id": "hello"}, limit=4)).dead_letters) == 4

        del receiver.answers["/hook"]  # answers 201 from now on
        assert await herald.replay_dead_letters([messages[0].id]) == 1
        await eventually(lambda: [r.status for r in receiver.at("/hook")], lambda s: 201 in s, what="the replay")
        await eventually(lambda: herald.query_dead_letters(), lambda r: len(r.dead_letters) == 5,
                         what="the replayed letter gone")
        assert await herald.replay_dead_letters(filter={"type": "channel.created"}) == 2
        assert await herald.replay_dead_letters(all=True) >= 3
        await eventually(lambda: herald.query_dead_letters(), lambda r: not r.dead_letters, what="all replayed")
