"""Two delivery replicas on one database (DESIGN §10.4): the monthly capacity is taken atomically
across them, and retention prunes on one replica at a time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from conftest import PG_ADMIN_URL
from herald.campaign.v1 import campaign_pb2
from services.delivery_svc import retention, store
from services.delivery_svc.retention import Retention
from services.kit.advisory import one_replica_at_a_time
from services.kit.db import make_engine, make_sessionmaker, transaction, utcnow

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


async def _old_rows(sessions) -> None:
    """Events every destination passed and dead letters, all past their retention."""
    long_ago = utcnow() - dt.timedelta(days=30)
    async with transaction(sessions) as session:
        await store.write_rows(session, store.events, [
            {"id": f"e{i}", "type": "campaign.started", "campaign_id": "k1", "cid": "", "message_id": "",
             "user_ids": [], "payload": b"", "created_at": long_ago, "position": i + 1} for i in range(3)])
        await store.write_rows(session, store.dead_letters, [
            {"id": f"d{i}", "destination": "webhook", "webhook_id": f"w{i}", "event_id": f"gone{i}",
             "type": "campaign.started", "campaign_id": "k1", "device_id": "", "url": "", "attempts": 1,
             "last_http_status": 0, "last_error": "", "event": b"", "created_at": long_ago} for i in range(2)])


@pytest.mark.skipif(not PG_ADMIN_URL, reason="replicas share a PostgreSQL database (SQLite: one replica)")
async def test_retention_prunes_on_one_replica_at_a_time(sessions):
    await _old_rows(sessions)
    engines = [make_engine(sessions.kw["bind"].url.render_as_string(hide_password=False)) for _ in range(2)]
    try:
        replicas = [Retention(make_sessionmaker(engine), [], event_retention_h=24, dead_letter_retention_h=168)
                    for engine in engines]
        # While one replica holds the turn (mid-pass), the other's pass is skipped: nothing pruned.
        async with one_replica_at_a_time(make_sessionmaker(engines[0]), retention.LOCK_KEY) as turn:
            assert turn
            assert await replicas[1].prune_once() is None
            async with transaction(sessions) as session:
                assert await session.scalar(sa.select(sa.func.count()).select_from(store.events)) == 3
        # Then it is its turn: everything due goes, once.
        assert await replicas[1].prune_once() == (3, 2)
        assert await replicas[0].prune_once() == (0, 0)
    finally:
        for engine in engines:
            await engine.dispose()
