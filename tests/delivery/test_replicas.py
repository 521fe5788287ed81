"""Two delivery replicas on one database (DESIGN §10.4): the monthly capacity is taken atomically
across them."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from herald.campaign.v1 import campaign_pb2
from services.kit.db import make_engine

from delivery.helpers import Stubs, all_messages, campaign, start, upsert_users, wait_done

STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED
CAPACITY = 250
AUDIENCE = 300  # per campaign: more than the capacity, so every campaign stops at it


async def test_two_replicas_sending_at_once_never_exceed_the_monthly_capacity(make_system):
    system, first = await make_system(delivery_batch_size=20, monthly_message_capacity=CAPACITY)
    second_replica = await system.start_replica("delivery")
    second = Stubs(system.channel("segment"), system.channel_to(second_replica))
    users = [f"u{i:03d}" for i in range(AUDIENCE)]
    await upsert_users(first.directory, ["sender", *users])
    # Two campaigns on each replica, all started at once: four writers near the capacity together.
    on = {"a1": first, "a2": first, "b1": second, "b2": second}
    await asyncio.gather(*(start(stubs, campaign(cid, user_ids=users)) for cid, stubs in on.items()))
    done = dict(zip(on, await asyncio.gather(*(wait_done(stubs, cid) for cid, stubs in on.items()))))

    assert {cid: (d.status, d.stop_reason) for cid, d in done.items()} == {
        cid: (STOPPED, campaign_pb2.STOP_REASON_CAPACITY) for cid in on}
    assert sum(d.stats.stats_messages_sent for d in done.values()) == CAPACITY
    written = {cid: len(await all_messages(first, {"created_by_campaign_id": cid})) for cid in on}
    assert written == {cid: d.stats.stats_messages_sent for cid, d in done.items()}
    engine = make_engine(system.settings.delivery_db_url)
    try:
        async with engine.connect() as connection:
            messages = await connection.scalar(sa.text("SELECT count(*) FROM messages"))
            usage = await connection.scalar(sa.text("SELECT messages FROM monthly_usage"))
    finally:
        await engine.dispose()
    assert messages == usage == CAPACITY
