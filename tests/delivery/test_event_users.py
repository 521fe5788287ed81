"""event_users: who each in-app event is for, written by the sequencer with the positions,
forgotten once the event is pruned, and filled by the upgrade for events positioned before."""

from __future__ import annotations

from sqlalchemy import delete, select

from delivery.event_log import add_and_position, message_new
from migrations.helpers import SCHEMAS, upgrade_to
from services.delivery_svc import store
from services.delivery_svc.migrations import SCHEMA
from services.delivery_svc.sequencer import Positions, Sequencer
from services.kit.db import make_engine, make_sessionmaker, transaction
from services.kit.migrate import migrate


async def test_event_users_hold_who_each_in_app_event_is_for_until_it_is_pruned(sessions):
    sequencer = Sequencer(sessions, Positions())
    campaign_event = {**message_new("started"), "type": "campaign.started"}
    await add_and_position(sequencer, [message_new("m1", "ann", "boss", "ann"), campaign_event,
                                       {**message_new("c1", "bob", "boss"), "type": "channel.created"}])

    async def indexed():
        async with transaction(sessions) as session:
            rows = await session.execute(select(store.event_users.c.user_id, store.events.c.id).outerjoin(
                store.events, store.events.c.position == store.event_users.c.position))
            return sorted(rows.all(), key=str)

    assert await indexed() == [("ann", "m1"), ("bob", "c1"), ("boss", "c1"), ("boss", "m1")]
    async with transaction(sessions) as session:
        await session.execute(delete(store.events).where(store.events.c.id == "m1"))
    await add_and_position(sequencer, [message_new("m2", "cat")])  # the next round forgets m1's rows
    assert await indexed() == [("bob", "c1"), ("boss", "c1"), ("cat", "m2")]


async def test_events_positioned_before_event_users_existed_are_indexed_by_the_upgrade(new_db_url):
    engine = make_engine(await new_db_url("delivery"))
    try:
        await upgrade_to(engine, SCHEMAS["delivery"], "0003")
        sessions = make_sessionmaker(engine)
        async with transaction(sessions) as session:
            await session.execute(store.events.insert(), [
                {**message_new("m1", "ann", "boss"), "position": 7}, {**message_new("m2", "bob"), "position": 9}])
        await migrate(engine, SCHEMA)
        async with transaction(sessions) as session:
            rows = (await session.execute(select(store.event_users).order_by(store.event_users.c.position,
                                                                             store.event_users.c.user_id))).all()
        assert [tuple(row) for row in rows] == [("ann", 7), ("boss", 7), ("bob", 9)]
    finally:
        await engine.dispose()
