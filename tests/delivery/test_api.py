"""The DeliveryService and MessageService surface: validation, NOT_FOUND, paging and filters,
WatchDelivery's cadence, read receipts, PublishEvent."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import sqlalchemy

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2, message_service_pb2

from delivery.helpers import (TERMINAL, all_messages, all_recipients, campaign, channels, get, start, struct,
                              upsert_users, wait_done)
from harness import error_reason, eventually, violations
from services.delivery_svc import deliveries, store
from services.kit.db import make_engine


async def _fails(call, code=grpc.StatusCode.INVALID_ARGUMENT, reason: str | None = None) -> list[str]:
    """The violated fields of the error `call` ends with, once its code (and reason) are checked."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    if reason is not None:
        assert error_reason(caught.value) == ("delivery.herald", reason), caught.value.details()
    return violations(caught.value)


@pytest.mark.parametrize("snapshot, fields", [
    (campaign("", user_ids=["a"]), ["campaign.id"]),
    (campaign("x" * 256, user_ids=["a"]), ["campaign.id"]),
    (campaign("c", sender_id="", user_ids=["a"]), ["campaign.sender_id"]),
    (campaign("c", text="", user_ids=["a"]), ["campaign.message_template.text"]),
    (campaign("c"), ["campaign.segment_ids"]),
    (campaign("c", user_ids=["a"], segment_ids=["s"]), ["campaign.user_ids"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate()), ["campaign.channel_template.type"]),
    # The limits of DESIGN §4–5 and §7: refused at start, not an ERROR stop later.
    (campaign("c", user_ids=[f"u{i}" for i in range(10_001)]), ["campaign.user_ids"]),
    (campaign("c", user_ids=["a", "x" * 256]), ["campaign.user_ids[1]"]),
    (campaign("c", user_ids=["a", "b\x00"]), ["campaign.user_ids[1]"]),
    (campaign("c", segment_ids=[f"s{i}" for i in range(26)]), ["campaign.segment_ids"]),
    (campaign("c", segment_ids=["s0", "s1", "s2", ""]), ["campaign.segment_ids[3]"]),
    (campaign("c", sender_id="s" * 256, user_ids=["a"]), ["campaign.sender_id"]),
    (campaign("c", user_ids=["a"], message_template=common_pb2.MessageTemplate(
        text="x", attachments=[struct({"type": "file"})] * 31)), ["campaign.message_template.attachments"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(type="t" * 65)),
     ["campaign.channel_template.type"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(type="a:b")),
     ["campaign.channel_template.type"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(type="m", id="i" * 256)),
     ["campaign.channel_template.id"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(type="m", team="t" * 1001)),
     ["campaign.channel_template.team"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(
        type="m", members=[f"m{i}" for i in range(1001)])), ["campaign.channel_template.members"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(
        type="m", members_template=[common_pb2.ChannelMemberTemplate(user_id="m")] * 1001)),
     ["campaign.channel_template.members_template"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(
        type="m", members=["a"], members_template=[common_pb2.ChannelMemberTemplate(user_id="b")])),
     ["campaign.channel_template.members_template"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(
        type="m", members_template=[common_pb2.ChannelMemberTemplate(user_id="{{ receiver.id }}"),
                                    common_pb2.ChannelMemberTemplate()])),
     ["campaign.channel_template.members_template[1].user_id"]),
    (campaign_pb2.Campaign(id="c", sender_id="s", user_ids=["a"], create_channels=True,
                           message_template=common_pb2.MessageTemplate(text="x")), ["campaign.channel_template"]),
    (campaign("c", user_ids=["a"], sender_mode=7), ["campaign.sender_mode"]),
    (campaign("c", user_ids=["a"], sender_visibility=7), ["campaign.sender_visibility"]),
])
async def test_start_validates_the_snapshot(stubs, snapshot, fields):
    request = delivery_service_pb2.StartDeliveryRequest(campaign=snapshot)
    assert await _fails(stubs.deliveries.StartDelivery(request), reason="INVALID_ARGUMENT") == fields


@pytest.mark.parametrize("snapshot, fields", [
    (campaign("c", user_ids=["a"], text="{{ receiver.name "), ["campaign.message_template.text"]),
    (campaign("c", user_ids=["a"], text="{{ stranger }}"), ["campaign.message_template.text"]),
    (campaign("c", user_ids=["a"], channel_template=common_pb2.ChannelTemplate(type="m", id="{% for %}")),
     ["campaign.channel_template.id"]),
])
async def test_start_refuses_templates_that_do_not_compile(stubs, snapshot, fields):
    request = delivery_service_pb2.StartDeliveryRequest(campaign=snapshot)
    assert await _fails(stubs.deliveries.StartDelivery(request), reason="TEMPLATE_INVALID") == fields


async def test_unknown_deliveries_are_not_found(stubs):
    not_found = dict(code=grpc.StatusCode.NOT_FOUND, reason="DELIVERY_NOT_FOUND")
    await _fails(stubs.deliveries.GetDelivery(delivery_service_pb2.GetDeliveryRequest(campaign_id="nope")), **not_found)
    await _fails(stubs.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(campaign_id="nope")),
                 **not_found)
    watch = stubs.deliveries.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id="nope"))
    await _fails(watch.read(), **not_found)
    assert await _fails(stubs.deliveries.GetDelivery(delivery_service_pb2.GetDeliveryRequest())) == ["campaign_id"]
    response = await stubs.deliveries.BatchGetDeliveries(
        delivery_service_pb2.BatchGetDeliveriesRequest(campaign_ids=["nope"]))
    assert list(response.deliveries) == []
    assert await _fails(stubs.deliveries.BatchGetDeliveries(delivery_service_pb2.BatchGetDeliveriesRequest(
        campaign_ids=[f"c{i}" for i in range(101)]))) == ["campaign_ids"]
    assert await _fails(stubs.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(
        campaign_id="x", reason=42))) == ["reason"]


async def test_query_recipients_filters_and_pages(stubs):
    users = [f"u{i:02d}" for i in range(25)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=[*users, "ghost"]))
    await start(stubs, campaign("c2", user_ids=users[:5]))
    await wait_done(stubs, "c1")
    await wait_done(stubs, "c2")

    everything = await all_recipients(stubs, {}, limit=7)
    assert [(r.campaign_id, r.target_id) for r in everything] == sorted(
        [("c1", u) for u in [*users, "ghost"]] + [("c2", u) for u in users[:5]])
    assert [r.target_id for r in await all_recipients(stubs, {"status": "skipped"})] == ["ghost"]
    assert len(await all_recipients(stubs, {"status": "RECIPIENT_STATUS_SENT", "campaign_id": "c1"})) == 25
    assert len(await all_recipients(stubs, {"campaign_id": {"$in": ["c2"]}})) == 5
    ranged = await all_recipients(stubs, {"campaign_id": "c1", "target_id": {"$gte": "u10", "$lt": "u13"}})
    assert [r.target_id for r in ranged] == ["u10", "u11", "u12"]
    listed = await all_recipients(stubs, {"target_id": {"$in": ["u01", "ghost"]}})
    assert sorted((r.campaign_id, r.target_id) for r in listed) == [("c1", "ghost"), ("c1", "u01"), ("c2", "u01")]

    # Keyset pages both ways, and descending order.
    request = delivery_service_pb2.QueryRecipientsRequest(filter=struct({"campaign_id": "c1"}), limit=10)
    first = await stubs.deliveries.QueryRecipients(request)
    second = await stubs.deliveries.QueryRecipients(delivery_service_pb2.QueryRecipientsRequest(
        filter=struct({"campaign_id": "c1"}), limit=10, next=first.next))
    back = await stubs.deliveries.QueryRecipients(delivery_service_pb2.QueryRecipientsRequest(
        filter=struct({"campaign_id": "c1"}), limit=10, prev=second.prev))
    assert [r.target_id for r in back.recipients] == [r.target_id for r in first.recipients]
    assert not first.prev and second.prev and second.next
    descending = await stubs.deliveries.QueryRecipients(delivery_service_pb2.QueryRecipientsRequest(
        filter=struct({"campaign_id": "c1"}), sort=[common_pb2.SortParam(field="target_id", direction=-1)], limit=2))
    assert [r.target_id for r in descending.recipients] == ["u24", "u23"]

    query = stubs.deliveries.QueryRecipients
    R = delivery_service_pb2.QueryRecipientsRequest
    assert await _fails(query(R(limit=10_001))) == ["limit"]
    bad_filter = dict(reason="INVALID_FILTER")
    assert await _fails(query(R(filter=struct({"status": "lost"}))), **bad_filter) == ["filter.status"]
    assert await _fails(query(R(filter=struct({"campaign_id": {"$gt": "a"}}))), **bad_filter) == [
        "filter.campaign_id.$gt"]
    assert await _fails(query(R(filter=struct({"reason": "x"}))), **bad_filter) == ["filter.reason"]
    assert await _fails(query(R(filter=struct({"campaign_id": "c2"}), next=first.next)), reason="CURSOR_INVALID") == [
        "next"]


async def test_query_messages_filters_and_pages(stubs):
    users = [f"u{i:02d}" for i in range(12)]
    await upsert_users(stubs.directory, ["sender", "other", *users])
    await start(stubs, campaign("c1", user_ids=users))
    await start(stubs, campaign("c2", sender_id="other", user_ids=users[:3]))
    await wait_done(stubs, "c1")
    await wait_done(stubs, "c2")
    assert len(await all_messages(stubs, {}, limit=5)) == 15
    assert len(await all_messages(stubs, {"user_id": "other"})) == 3
    in_channel = await all_messages(stubs, {"cid": "messaging:u01-sender"})
    assert [m.created_by_campaign_id for m in in_channel] == ["c1"]
    newest = await stubs.messages.QueryMessages(message_service_pb2.QueryMessagesRequest(
        sort=[common_pb2.SortParam(field="created_at", direction=-1)], limit=3))
    assert len(newest.messages) == 3 and newest.next
    Q = message_service_pb2.QueryMessagesRequest
    assert await _fails(stubs.messages.QueryMessages(Q(limit=1001))) == ["limit"]
    assert await _fails(stubs.messages.QueryMessages(Q(sort=[common_pb2.SortParam(field="text")]))) == [
        "sort[0].field"]
    assert await _fails(stubs.messages.QueryMessages(Q(filter=struct({"cid": {"$in": "x"}}))),
                        reason="INVALID_FILTER") == ["filter.cid.$in"]


async def test_read_receipts_count_distinct_readers_also_after_completion(stubs):
    await upsert_users(stubs.directory, ["sender", "a", "b"])
    await start(stubs, campaign("c1", user_ids=["a", "b"]))
    await wait_done(stubs, "c1")
    mark = stubs.messages.MarkRead
    R = message_service_pb2.MarkReadRequest
    assert (await mark(R(user_id="a", cid="messaging:a-sender"))).marked_count == 1
    assert (await mark(R(user_id="a", cid="messaging:a-sender"))).marked_count == 0
    assert (await mark(R(user_id="sender", cid="messaging:a-sender"))).marked_count == 0  # their own message
    assert (await mark(R(user_id="a", cid="messaging:nowhere"))).marked_count == 0
    assert (await mark(R(user_id="a", cid="messaging:a-sender"))).marked_count == 0
    assert (await get(stubs, "c1")).stats.stats_users_read == 1
    await mark(R(user_id="b", cid="messaging:b-sender"))
    assert (await get(stubs, "c1")).stats.stats_users_read == 2
    batch = await stubs.deliveries.BatchGetDeliveries(delivery_service_pb2.BatchGetDeliveriesRequest(
        campaign_ids=["c1", "nope", "c1"]))
    assert [(d.campaign_id, d.stats.stats_users_read) for d in batch.deliveries] == [("c1", 2)]
    assert await _fails(mark(R(cid="messaging:a-sender"))) == ["user_id"]
    assert await _fails(mark(R())) == ["user_id", "cid"]


async def test_watch_streams_progress_at_the_design_cadence_and_ends_with_the_terminal_state(make_system):
    _, stubs = await make_system(delivery_batch_size=50, max_send_rate=500)
    users = [f"u{i:04d}" for i in range(1000)]
    await upsert_users(stubs.directory, ["sender", *users])
    loop = asyncio.get_running_loop()
    await start(stubs, campaign("c1", user_ids=users))
    times, updates = [], []
    async for update in stubs.deliveries.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id="c1")):
        times.append(loop.time())
        updates.append(update.delivery)
    assert updates[-1].status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED and updates[-1].stats.progress == 1
    assert all(u.status not in TERMINAL for u in updates[:-1])
    # At most four a second: a count over the whole stream, which a busy machine can only lower
    # (updates arriving late bunch up, so gaps between arrivals say nothing either way).
    assert len(updates) <= 4 * (times[-1] - times[0]) + 2, (len(updates), times[-1] - times[0])
    progress = [u.stats.progress for u in updates]
    assert progress == sorted(progress) and len(updates) >= 4
    assert any(0 < u.recipients_per_second for u in updates[1:-1])


async def test_watch_heartbeats_repeat_the_state_and_still_see_another_process_write(make_system, monkeypatch):
    # This process's writes notify the watchers; a write of another process (a replica on
    # PostgreSQL) has no notice and shows when the stored delivery is read again, not only at the
    # next batch.
    monkeypatch.setattr(deliveries, "WATCH_REREAD_S", 2.0)
    # One recipient, then none for 100 s:
    system, stubs = await make_system(delivery_batch_size=1, max_send_rate=0.01)
    await upsert_users(stubs.directory, ["sender", *[f"u{i}" for i in range(60)]])
    await start(stubs, campaign("c1", user_ids=[f"u{i}" for i in range(60)]))
    watch = stubs.deliveries.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id="c1"))
    seen = []

    async def next_total():
        seen.append((await watch.read()).delivery)
        return seen[-1].stats.recipients_total

    await eventually(next_total, lambda total: total == 60, what="the audience counted")
    engine = make_engine(system.settings.delivery_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sqlalchemy.update(store.deliveries).values(recipients_total=600))
    finally:
        await engine.dispose()
    await eventually(next_total, lambda total: total == 600, what="the total written by another process")
    watch.cancel()
    assert all(d.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS for d in seen), seen[-1]


async def test_publish_event_is_idempotent_by_id(stubs):
    event = delivery_pb2.Event(id="campaign.started:c1", type="campaign.started",
                               campaign=campaign_pb2.Campaign(id="c1", name="Spring"))
    first = await stubs.deliveries.PublishEvent(delivery_service_pb2.PublishEventRequest(event=event))
    assert first.event.sequence > 0 and first.event.campaign.name == "Spring"
    assert not first.event.HasField("message") and not first.event.HasField("channel")
    event.campaign.name = "changed"
    again = await stubs.deliveries.PublishEvent(delivery_service_pb2.PublishEventRequest(event=event))
    assert again.event == first.event
    other = await stubs.deliveries.PublishEvent(delivery_service_pb2.PublishEventRequest(event=delivery_pb2.Event(
        id="campaign.completed:c1", type="campaign.completed", campaign=campaign_pb2.Campaign(id="c1"))))
    assert other.event.sequence > first.event.sequence
    publish = stubs.deliveries.PublishEvent
    P = delivery_service_pb2.PublishEventRequest
    assert await _fails(publish(P())) == ["event.id", "event.type", "event.campaign"]
    assert await _fails(publish(P(event=delivery_pb2.Event(id="e", type="message.new", campaign=event.campaign)))) == [
        "event.type"]
    too_long = delivery_pb2.Event(id="e", type="campaign.started", campaign=campaign_pb2.Campaign(id="c" * 256),
                                  cid="x" * 2000, user_ids=["u", "v" * 256])
    assert await _fails(publish(P(event=too_long))) == ["event.campaign.id", "event.cid", "event.user_ids[1]"]


async def test_a_read_made_while_the_message_is_being_written_counts_once_it_is_there(make_system):
    # One recipient in four seconds: u2's channel is ensured and its message rendered seconds before
    # the batch is written, however slow the machine; a MarkRead in between must not hide the
    # message for good.
    _, stubs = await make_system(delivery_batch_size=1, max_send_rate=0.25)
    await upsert_users(stubs.directory, ["sender", "u0", "u1", "u2"])
    await start(stubs, campaign("c1", user_ids=["u0", "u1", "u2"]))
    cid = "messaging:u2-sender"
    await eventually(lambda: channels(stubs, {"cid": cid}), what=f"channel {cid}")
    await asyncio.sleep(0.3)  # the message is rendered right after its channel is ensured
    assert await all_messages(stubs, {"cid": cid}) == []
    mark = stubs.messages.MarkRead
    R = message_service_pb2.MarkReadRequest
    assert (await mark(R(user_id="u2", cid=cid))).marked_count == 0
    assert (await get(stubs, "c1")).stats.stats_users_read == 0
    await wait_done(stubs, "c1")
    assert (await mark(R(user_id="u2", cid=cid))).marked_count == 1
    assert (await mark(R(user_id="u2", cid=cid))).marked_count == 0
    assert (await get(stubs, "c1")).stats.stats_users_read == 1


async def test_progress_stays_below_1_until_completed(make_system):
    # Paced at 5/s in batches of 10: after the last batch the run waits two seconds before it
    # completes, with every recipient handled and the delivery still in progress.
    _, stubs = await make_system(delivery_batch_size=10, max_send_rate=5)
    users = [f"u{i:02d}" for i in range(30)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    seen = []

    async def observe() -> int:
        delivery = await get(stubs, "c1")
        if delivery.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
            seen.append((delivery.stats.stats_messages_sent, delivery.stats.progress))
        return delivery.status

    await eventually(observe, lambda status: status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS,
                     what="c1 no longer in progress", interval_s=0.05)
    assert (30, max(p for _, p in seen)) in seen, seen  # the case in question did occur
    assert all(0 <= progress < 1 for _, progress in seen), seen
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    done = await wait_done(stubs, "c1")
    assert (done.status, done.stats.progress) == (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, 1.0)
