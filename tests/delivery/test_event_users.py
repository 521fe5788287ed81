"""event_users: who each in-app event is for, written with the positions (by the sequencer, or
on SQLite by the writer of the events), forgotten once the event is pruned, and filled by the
upgrade for events positioned before."""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from delivery.event_log import T, add_and_position, message_new
from migrations.helpers import SCHEMAS, upgrade_to
from services.delivery_svc import store
from services.delivery_svc.migrations import SCHEMA
from services.delivery_svc.sequencer import Positions, Sequencer
from services.kit.bulk import DriverValues
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
    await add_and_position(sequencer, [message_new("m2", "cat")])
    assert ("ann", None) in await indexed()
    async with transaction(sessions) as session:  # retention's round, after pruning
        assert await store.forget_in_app_rows(session, 100) == 2
    assert await indexed() == [("bob", "c1"), ("boss", "c1"), ("cat", "m2")]
    async with transaction(sessions) as session:  # every event pruned: every row goes
        await session.execute(delete(store.events))
        assert await store.forget_in_app_rows(session, 100) == 3
    assert await indexed() == []


async def test_events_written_in_a_batch_are_positioned_there_on_sqlite_and_by_the_sequencer_otherwise(sessions):
    sequencer = Sequencer(sessions, Positions())
    await add_and_position(sequencer, [message_new("before", "ann")])

    def row(event: dict) -> store.EventRow:
        return store.EventRow(**{**event, "user_ids": json.dumps(event["user_ids"]), "created_at": values.time(T)})

    async with transaction(sessions) as session:
        values = DriverValues.of(session)
        batch = [row(message_new("m1", "bob", "boss", "bob")), row({**message_new("k1"), "type": "campaign.stopped"})]
        await store.insert_events(session, values, batch)
    async with transaction(sessions) as session:  # written again (a repeated publish): left alone
        await store.insert_events(session, values, [batch[0], row(message_new("m2", "cat"))])
    while await sequencer.sequence_once():
        pass
    async with transaction(sessions) as session:
        positions = dict((await session.execute(select(store.events.c.id, store.events.c.position))).all())
        users = (await session.execute(select(store.event_users).order_by(store.event_users.c.position,
                                                                           store.event_users.c.user_id))).all()
    assert positions["before"] < positions["m1"] < positions["k1"] < positions["m2"]
    assert [tuple(u) for u in users] == [("ann", positions["before"]), ("bob", positions["m1"]),
                                         ("boss", positions["m1"]), ("cat", positions["m2"])]
    assert sequencer.positions.last == positions["m2"]


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
