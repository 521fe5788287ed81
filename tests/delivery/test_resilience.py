"""Exactly once, stopping, capacity and upstream failures."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_service_pb2
from services.kit.db import make_engine

from harness import eventually
from delivery.helpers import (all_messages, all_recipients, campaign, channels, get, start, upsert_users, user_segment,
                              wait_done)
from harness import error_reason

STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


def stats_of(delivery):
    s = delivery.stats
    return (s.recipients_total, s.recipients_skipped, s.recipients_failed, s.stats_messages_sent,
            s.stats_channels_created, s.stats_users_sent)


async def _sql(url: str, *statements: str):
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            results = [(await conn.execute(sa.text(s))) for s in statements]
            return [r.all() if r.returns_rows else None for r in results]
    finally:
        await engine.dispose()


async def test_a_replayed_checkpoint_writes_nothing_twice_and_keeps_stats(make_system):
    system, stubs = await make_system(delivery_batch_size=50)
    users = [f"u{i:03d}" for i in range(300)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=[*users, "ghost"]))
    clean = await wait_done(stubs, "c1")
    # As after a crash: the checkpoints (the delivery's; on PostgreSQL its partitions') go back to
    # the start although everything was written.
    await _sql(system.settings.delivery_db_url,
               "UPDATE deliveries SET status = 3, cursor = '', completed_at = NULL",
               "UPDATE delivery_partitions SET done = false, cursor = after_id, lease_until = NULL")
    await system.restart("delivery")
    again = await wait_done(stubs, "c1")
    assert again.status == COMPLETED
    assert stats_of(again) == stats_of(clean) == (301, 1, 0, 300, 300, 300)
    messages = await all_messages(stubs, {"created_by_campaign_id": "c1"})
    assert len(messages) == len({m.cid for m in messages}) == 300
    [[(events,)]] = await _sql(system.settings.delivery_db_url, "SELECT count(*) FROM events")
    assert events == 600


async def test_start_again_returns_the_existing_delivery(stubs):
    await upsert_users(stubs.directory, ["sender", "a"])
    first = await start(stubs, campaign("c1", user_ids=["a"]))
    await wait_done(stubs, "c1")
    again = await start(stubs, campaign("c1", user_ids=["a"], text="another text"))
    assert again.status == COMPLETED and again.created_at == first.created_at
    assert [m.text for m in await all_messages(stubs, {"created_by_campaign_id": "c1"})] == [
        "Hi Name a from Name sender"]


async def test_stop_midway_leaves_the_rest_unsent_and_nothing_half_written(make_system):
    system, stubs = await make_system(delivery_batch_size=100, max_send_rate=400)
    users = [f"u{i:04d}" for i in range(2000)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    await eventually(lambda: get(stubs, "c1"), lambda d: d.stats.stats_messages_sent >= 200,
                     what="200 messages sent")
    response = await stubs.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(
        campaign_id="c1", message="changed our mind"))
    assert response.delivery.status == STOPPED
    assert response.delivery.stop_reason == campaign_pb2.STOP_REASON_REQUESTED
    assert response.delivery.stop_message == "changed our mind"
    await asyncio.sleep(0.6)  # more than one batch at this rate: nothing may follow the stop
    final = await wait_done(stubs, "c1")
    sent = final.stats.stats_messages_sent
    assert 200 <= sent < 2000 and sent % 100 == 0  # whole batches only
    assert final.stats.progress < 1 and not final.stats.HasField("stats_completed_at")
    assert len(await all_messages(stubs, {"created_by_campaign_id": "c1"})) == sent
    assert len(await all_recipients(stubs, {"campaign_id": "c1"})) == sent
    # Stopping a stopped delivery changes nothing; a restart does not resume it.
    again = await stubs.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(
        campaign_id="c1", reason=campaign_pb2.STOP_REASON_ERROR))
    assert again.delivery.stop_reason == campaign_pb2.STOP_REASON_REQUESTED
    await system.restart("delivery")
    await asyncio.sleep(0.3)
    assert (await get(stubs, "c1")).stats.stats_messages_sent == sent


async def _channels_accounted(system, stubs, campaign_id: str) -> tuple[int, int, int]:
    """(stats_channels_created, channels the sender's campaign really created, channel.created events)."""
    made = await channels(stubs, {"created_by_id": "sender"})
    [[(events,)]] = await _sql(system.settings.delivery_db_url,
                               f"SELECT count(*) FROM events WHERE type = 'channel.created' "
                               f"AND campaign_id = '{campaign_id}'")
    return (await get(stubs, campaign_id)).stats.stats_channels_created, len(made), events


async def test_a_stop_counts_and_announces_exactly_the_channels_the_campaign_created(make_system):
    # The run ensures channels a few batches ahead of the writer; a stop must not drop them.
    system, stubs = await make_system(delivery_batch_size=100, max_send_rate=400)
    users = [f"u{i:04d}" for i in range(2000)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    await eventually(lambda: get(stubs, "c1"), lambda d: d.stats.stats_messages_sent >= 200,
                     what="200 messages sent")
    response = await stubs.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(campaign_id="c1"))
    stopped = response.delivery
    assert stopped.status == STOPPED
    final = await wait_done(stubs, "c1")
    counted, made, announced = await _channels_accounted(system, stubs, "c1")
    assert counted == made == announced == stopped.stats.stats_channels_created == final.stats.stats_channels_created
    sent = final.stats.stats_messages_sent
    assert made > sent  # batches were ensured ahead of the writer when the stop landed
    # Their recipients stay unsent: no message, no log row.
    assert len(await all_messages(stubs, {"created_by_campaign_id": "c1"})) == sent
    assert len(await all_recipients(stubs, {"campaign_id": "c1"})) == sent == final.stats.stats_users_sent


async def test_a_capacity_stop_counts_and_announces_exactly_the_channels_the_campaign_created(make_system):
    system, stubs = await make_system(delivery_batch_size=40, monthly_message_capacity=130)
    users = [f"u{i:03d}" for i in range(400)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    done = await wait_done(stubs, "c1")
    assert (done.status, done.stop_reason, done.stats.stats_messages_sent) == (
        STOPPED, campaign_pb2.STOP_REASON_CAPACITY, 130)
    counted, made, announced = await _channels_accounted(system, stubs, "c1")
    assert counted == made == announced == done.stats.stats_channels_created
    assert made > 130  # the capacity batch's unsent rest and the batches ensured ahead
    assert len(await all_recipients(stubs, {"campaign_id": "c1"})) == 130


async def test_monthly_capacity_stops_the_delivery_at_the_limit(make_system):
    _, stubs = await make_system(delivery_batch_size=40, monthly_message_capacity=150)
    users = [f"u{i:03d}" for i in range(100)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    first = await wait_done(stubs, "c1")
    assert (first.status, first.stats.stats_messages_sent) == (COMPLETED, 100)
    await start(stubs, campaign("c2", user_ids=users))
    second = await wait_done(stubs, "c2")
    assert (second.status, second.stop_reason) == (STOPPED, campaign_pb2.STOP_REASON_CAPACITY)
    assert second.stats.stats_messages_sent == 50
    assert "capacity" in second.stop_message
    assert len(await all_messages(stubs, {"created_by_campaign_id": "c2"})) == 50

    # The capacity is used up: a new delivery is refused until next month, with a RetryInfo.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await start(stubs, campaign("c3", user_ids=users))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refused.value) == ("delivery.herald", "CAPACITY_EXHAUSTED")
    retry = [d for d in rpc_status.from_call(refused.value).details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    # A retried start of an existing delivery still answers with it.
    assert (await start(stubs, campaign("c2", user_ids=users))).status == STOPPED


async def test_a_deleted_segment_stops_the_delivery_with_error(stubs):
    await upsert_users(stubs.directory, ["sender"])
    await start(stubs, campaign("c1", segment_ids=["no-such-segment"]))
    done = await wait_done(stubs, "c1")
    assert (done.status, done.stop_reason) == (STOPPED, campaign_pb2.STOP_REASON_ERROR)
    assert "NOT_FOUND" in done.stop_message


async def test_the_segment_service_restarting_midway_costs_a_resume_not_the_campaign(make_system):
    system, stubs = await make_system(delivery_batch_size=100, max_send_rate=1500)
    users = [f"u{i:04d}" for i in range(3000)]
    await upsert_users(stubs.directory, ["sender", *users])
    segment_id = await user_segment(stubs.segments, users)
    await start(stubs, campaign("c1", segment_ids=[segment_id]))
    await eventually(lambda: get(stubs, "c1"), lambda d: d.stats.stats_messages_sent >= 300,
                     what="300 messages sent")
    await system.restart("segment")
    done = await wait_done(stubs, "c1")
    assert done.status == COMPLETED
    assert stats_of(done) == (3000, 0, 0, 3000, 3000, 3000)
    assert len(await all_recipients(stubs, {"campaign_id": "c1", "status": "sent"})) == 3000


async def test_max_send_rate_paces_batches(make_system):
    _, stubs = await make_system(delivery_batch_size=1000, max_send_rate=200)
    users = [f"u{i:03d}" for i in range(300)]
    await upsert_users(stubs.directory, ["sender", *users])
    loop = asyncio.get_running_loop()
    began = loop.time()
    await start(stubs, campaign("c1", user_ids=users))
    done = await wait_done(stubs, "c1")
    assert done.stats.stats_messages_sent == 300
    assert loop.time() - began >= 1.0  # 300 recipients at 200/s: batches of 200, the second paced
