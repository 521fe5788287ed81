"""SendTestCampaign over the three real services (DESIGN §10.2, issue 15): test messages are real
messages — in QueryMessages with custom.test true and ids of their own, with their channel.created
and message.new events, in-app, webhooks and push (the campaign's skip flags applying), counted by
GetUsage — and never in the campaign's stats: no delivery, no recipient log, no counters, reads of
them not counted; the campaign's own run later still sends every recipient once. A retry with the
same request_id sends nobody twice. What it refuses: bad lists, the wrong kind of recipient, the
sender, an unknown campaign, a campaign being sent (in progress, paused), a month without room."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
from google.protobuf.json_format import MessageToDict

from delivery.receiver import receiving
from harness import TEST_SECRET, eventually, serve_system
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs
from services.client import HeraldClient
from services.client.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

SENT, SKIPPED, FAILED = (campaign_pb2.PREVIEW_STATUS_SENT, campaign_pb2.PREVIEW_STATUS_SKIPPED,
                         campaign_pb2.PREVIEW_STATUS_FAILED)
USERS = [{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"},
         {"id": "cy", "name": "Cy"}, {"id": "dee", "name": "Dee"}, {"id": "eve", "name": "E" * 5001}]
CHANNEL = {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}"}
MESSAGE = {"text": "Hi {{ receiver.name }}", "custom": {"tier": "gold"}}
HOOK = "/hook"


@pytest.fixture
async def make(new_db_url, tmp_path):
    """`system, herald = await make(**settings)`: the three services and a client."""
    async with AsyncExitStack() as stack:
        async def started(**overrides):
            system = await stack.enter_async_context(serve_system(new_db_url, tmp_path, **overrides))
            herald = HeraldClient.from_settings(replace(system.settings, api_secret=TEST_SECRET))
            stack.push_async_callback(herald.close)
            return system, herald
        yield started


async def sent_campaign(herald: HeraldClient, campaign_id: str) -> campaign_pb2.Campaign:
    await herald.start_campaign(campaign_id)
    ended = [c async for c in herald.watch_campaign(campaign_id)][-1]
    assert ended.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED
    return ended


def custom(message) -> dict:
    return MessageToDict(message.custom)


async def test_test_messages_are_real_and_never_in_the_campaigns_stats(make):
    system, herald = await make()
    await herald.upsert_users(USERS)
    await herald.create_campaign(id="spring", sender_id="boss", user_ids=["ann", "bob", "cy"], message_template=MESSAGE,
                                 channel_template=CHANNEL, create_channels=True)

    # To colleagues in the audience or not (dee), repeats left out, an unknown one skipped, a too long text failed.
    answer = await herald.send_test_campaign("spring", user_ids=["ann", "dee", "ghost", "ann", "eve"])
    ann, dee, ghost, eve = answer.recipients
    assert [r.target_id for r in answer.recipients] == ["ann", "dee", "ghost", "eve"] and answer.request_id
    assert (ann.status, ann.cid, ann.channel_exists, list(ann.member_ids)) == (
        SENT, "messaging:ann-boss", False, ["ann", "boss"])
    assert ann.message.id.startswith("test-") and ann.message.text == "Hi Ann"
    assert custom(ann.message) == {"tier": "gold", "campaign_id": "spring", "test": True}
    assert (dee.status, dee.message.text) == (SENT, "Hi Dee")
    assert (ghost.status, ghost.reason, ghost.cid) == (SKIPPED, "user_not_found", "")
    assert (eve.status, eve.reason, eve.cid) == (FAILED, "text_too_long", "messaging:eve-boss")

    # Real messages: QueryMessages has them as the answer says, with their events in the log.
    stored = {m.id: m async for m in herald.iter_messages({"created_by_campaign_id": "spring"})}
    assert sorted(stored) == sorted([ann.message.id, dee.message.id])
    assert custom(stored[ann.message.id]) == custom(ann.message) and stored[ann.message.id].cid == ann.cid
    outbox = system.servers["delivery"].service.outbox  # positioned as they commit (PostgreSQL: just after)
    log = await eventually(lambda: outbox.read(0, 100), lambda events: len(events) >= 5, what="5 events")
    assert sorted((e.type, e.cid) for e in log) == [
        ("channel.created", "messaging:ann-boss"), ("channel.created", "messaging:dee-boss"),
        ("channel.created", "messaging:eve-boss"),  # made for eve, whose message then failed
        ("message.new", "messaging:ann-boss"), ("message.new", "messaging:dee-boss")]
    assert {e.message.id for e in log if e.type == "message.new"} == {ann.message.id, dee.message.id}
    assert (await herald.get_usage()).messages_sent == 2

    # Never in the campaign's stats: still a draft, no delivery, no recipient log; a read does not count.
    assert await herald.mark_read("ann", "messaging:ann-boss") == 0
    draft = await herald.get_campaign("spring")
    assert draft.status == campaign_pb2.CAMPAIGN_STATUS_DRAFT and draft.stats == campaign_pb2.CampaignStats()
    with pytest.raises(NotFound):
        await herald.get_delivery("spring")
    assert [r async for r in herald.iter_recipients({"campaign_id": "spring"})] == []

    # The same request again (a client retrying after UNAVAILABLE) sends and counts nothing more.
    again = await herald.send_test_campaign("spring", user_ids=["ann", "dee", "ghost", "eve"],
                                            request_id=answer.request_id)
    assert list(again.recipients) == [ann, dee, ghost, eve]
    assert len([m async for m in herald.iter_messages({"created_by_campaign_id": "spring"})]) == 2
    assert (await herald.get_usage()).messages_sent == 2

    # The campaign's own run sends everyone once, ann too: her channel was made by the test, not by it.
    done = await sent_campaign(herald, "spring")
    stats = done.stats
    assert (stats.stats_messages_sent, stats.stats_users_sent, stats.stats_channels_created, stats.recipients_total,
            stats.recipients_skipped, stats.recipients_failed) == (3, 3, 2, 3, 0, 0)
    logged = {r.target_id: r async for r in herald.iter_recipients({"campaign_id": "spring"})}
    assert sorted(logged) == ["ann", "bob", "cy"]
    to_ann = [m async for m in herald.iter_messages({"cid": "messaging:ann-boss"})]
    assert sorted(m.id for m in to_ann) == sorted([ann.message.id, logged["ann"].message_id])
    assert "test" not in custom(next(m for m in to_ann if m.id == logged["ann"].message_id))
    assert (await herald.get_usage()).messages_sent == 5

    # A read of the campaign's own message counts; a test send after it ended still works.
    assert await herald.mark_read("ann", "messaging:ann-boss") == 1
    await eventually(lambda: herald.get_campaign("spring"), lambda c: c.stats.stats_users_read == 1)
    later = await herald.send_test_campaign("spring", user_ids="bob")
    assert [(r.target_id, r.status, r.channel_exists) for r in later.recipients] == [("bob", SENT, True)]
    assert later.recipients[0].message.id not in {ann.message.id, logged["bob"].message_id}
    assert (await herald.get_campaign("spring")).stats.stats_messages_sent == 3


async def test_channel_audiences_are_tested_by_cid(make):
    _, herald = await make()
    await herald.upsert_users(USERS[:3])
    await herald.upsert_channels([{"type": "team", "id": "red", "members": [{"user_id": "ann"}]},
                                  {"type": "team", "id": "blue", "members": [{"user_id": "bob"}]}])
    await herald.create_segment("channel", id="teams", filter={"type": "team"})
    await herald.create_campaign(id="news", sender_id="boss", segment_ids=["teams"], sender_mode="include",
                                 message_template={"text": "News for {{ channel.member_count }}"})

    answer = await herald.send_test_campaign("news", cids=["team:red", "team:none"])
    red, none = answer.recipients
    assert (red.status, red.channel_exists, list(red.member_ids), red.message.text) == (
        SENT, True, ["ann", "boss"], "News for 2")  # sender_mode include joined boss, as a real send does
    assert (none.status, none.reason) == (SKIPPED, "channel_not_found")
    with pytest.raises(InvalidArgument) as refused:
        await herald.send_test_campaign("news", user_ids=["ann"])
    assert [v.field for v in refused.value.field_violations] == ["user_ids"]

    done = await sent_campaign(herald, "news")
    assert (done.stats.stats_messages_sent, done.stats.stats_users_sent) == (2, 2)
    red_messages = [m async for m in herald.iter_messages({"cid": "team:red"})]
    assert len(red_messages) == 2 and sum(custom(m).get("test", False) for m in red_messages) == 1


async def test_what_a_test_send_refuses(make):
    # A slow send rate keeps the second campaign in progress (then paused) while it is tested.
    _, herald = await make(max_send_rate=2.0)
    await herald.upsert_users(USERS[:4] + [{"id": f"u{i:02}"} for i in range(20)])
    await herald.create_campaign(id="hi", sender_id="boss", user_ids=["ann"], message_template={"text": "Hi"})
    eleven = [f"u{i:02}" for i in range(11)]
    cases = [({"user_ids": eleven}, "user_ids"), ({}, "user_ids"), ({"user_ids": ["ann"], "cids": ["a:b"]}, "cids"),
             ({"cids": ["messaging:x"]}, "cids"), ({"user_ids": ["ann", ""]}, "user_ids[1]"),
             ({"user_ids": ["boss"]}, "user_ids[0]"), ({"user_ids": ["ann"], "request_id": "r" * 256}, "request_id")]
    for recipients, field in cases:
        with pytest.raises(InvalidArgument) as refused:
            await herald.send_test_campaign("hi", **recipients)
        assert [v.field for v in refused.value.field_violations] == [field], recipients
    with pytest.raises(NotFound) as unknown:
        await herald.send_test_campaign("nope", user_ids=["ann"])
    assert unknown.value.reason == "CAMPAIGN_NOT_FOUND"

    await herald.create_campaign(id="slow", sender_id="boss", user_ids=[f"u{i:02}" for i in range(20)],
                                 message_template={"text": "Hi"}, channel_template=CHANNEL, create_channels=True)
    await herald.start_campaign("slow")
    with pytest.raises(FailedPrecondition) as sending:
        await herald.send_test_campaign("slow", user_ids=["ann"])
    assert sending.value.reason == "CAMPAIGN_NOT_TESTABLE" and "in progress" in sending.value.message
    await herald.campaigns.PauseCampaign(cs.PauseCampaignRequest(id="slow"))  # the raw stub
    with pytest.raises(FailedPrecondition) as paused:
        await herald.send_test_campaign("slow", user_ids=["ann"])
    assert paused.value.reason == "CAMPAIGN_NOT_TESTABLE" and "paused" in paused.value.message
    stopped = await herald.stop_campaign("slow")
    assert stopped.status == campaign_pb2.CAMPAIGN_STATUS_STOPPED
    answer = await herald.send_test_campaign("slow", user_ids=["ann"])  # stopped: it may be tested again
    assert answer.recipients[0].status == SENT
    # Scheduled: too.
    await herald.start_campaign("hi", scheduled_for="2099-01-01T00:00:00Z")
    assert (await herald.send_test_campaign("hi", user_ids=["ann"])).recipients[0].reason == "channel_not_found"


async def test_the_monthly_capacity_counts_test_sends_all_or_nothing(make):
    _, herald = await make(monthly_message_capacity=3)
    await herald.upsert_users(USERS[:5])
    await herald.create_campaign(id="cap", sender_id="boss", user_ids=["ann"], message_template={"text": "Hi"},
                                 channel_template=CHANNEL, create_channels=True)

    assert len((await herald.send_test_campaign("cap", user_ids=["ann", "bob"])).recipients) == 2
    with pytest.raises(ResourceExhausted) as full:  # 1 left for 2 messages: nothing is sent, no channel made
        await herald.send_test_campaign("cap", user_ids=["cy", "dee"])
    assert full.value.reason == "CAPACITY_EXHAUSTED" and full.value.retry_after_s
    assert [c.cid async for c in herald.iter_channels()] == ["messaging:ann-boss", "messaging:bob-boss"]
    usage = await herald.get_usage()
    assert (usage.messages_sent, usage.remaining) == (2, 1)

    await herald.send_test_campaign("cap", user_ids=["cy"])
    usage = await herald.get_usage()
    assert (usage.messages_sent, usage.remaining) == (3, 0)
    with pytest.raises(ResourceExhausted):  # and the campaign cannot start either
        await herald.start_campaign("cap")


async def test_test_messages_reach_webhooks_and_devices_unless_the_campaign_skips_them(make):
    async with receiving() as receiver:
        _, herald = await make(webhook_url=f"{receiver.url}{HOOK}", push_allow_private=True)
        await herald.upsert_users(USERS[:3])
        await herald.upsert_devices([{"user_id": "ann", "provider": "http", "endpoint": f"{receiver.url}/push/ann"},
                                     {"user_id": "bob", "provider": "http", "endpoint": f"{receiver.url}/push/bob"}])
        fields = dict(sender_id="boss", message_template={"text": "Hi {{ receiver.name }}"}, channel_template=CHANNEL,
                      create_channels=True)
        await herald.create_campaign(id="loud", user_ids=["ann"], **fields)
        await herald.create_campaign(id="quiet", user_ids=["bob"], skip_push=True, skip_webhook=True, **fields)

        quiet = (await herald.send_test_campaign("quiet", user_ids=["bob"])).recipients[0]
        loud = (await herald.send_test_campaign("loud", user_ids=["ann"])).recipients[0]

        def hooks() -> list[dict]:
            return [json.loads(r.body) for r in receiver.at(HOOK)]

        posted = await eventually(hooks, lambda got: len(got) >= 2, what="the loud test's webhooks")
        assert sorted(body["type"] for body in posted) == ["channel.created", "message.new"]
        new = next(body for body in posted if body["type"] == "message.new")
        assert (new["message"]["id"], new["message"]["custom"]["test"]) == (loud.message.id, True)
        pushed = await eventually(lambda: receiver.at("/push/ann"), what="ann's notification")
        assert json.loads(pushed[0].body)["data"]["message_id"] == loud.message.id
        # The quiet campaign's were skipped: dispatched in order before the loud one's, so nothing came.
        assert receiver.at("/push/bob") == [] and {b["cid"] for b in hooks()} == {loud.cid}
        assert quiet.status == SENT
