"""The sequencer: events get positions in the order they become visible, so a reader resuming
after a position never misses an event committed later — also when PostgreSQL commits two
transactions out of insertion order."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import delete, select

from conftest import PG_ADMIN_URL
from services.delivery_svc import store
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.sequencer import Positions, Sequencer
from services.kit.db import transaction

T = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)


def event_row(event_id: str, *, type_: str = "campaign.started", user_ids=(), message_id: str = "") -> dict:
    return {"id": event_id, "type": type_, "campaign_id": "k1", "cid": "", "message_id": message_id,
            "user_ids": list(user_ids), "payload": b"", "created_at": T}


async def add_events(sessions, *ids: str) -> None:
    async with transaction(sessions) as session:
        await store.write_rows(session, store.events, [event_row(i) for i in ids])


async def positions_of(sessions) -> dict[str, int | None]:
    async with transaction(sessions) as session:
        rows = await session.execute(select(store.events.c.id, store.events.c.position))
    return dict(rows.all())


async def read_ids(sessions, after: int, limit: int = 100) -> list[tuple[str, int]]:
    async with transaction(sessions) as session:
        return [(row.id, row.position) for row in await store.events_after(session, after, limit)]


async def test_events_are_positioned_in_insertion_order_one_bulk_update_per_batch(sessions):
    sequencer = Sequencer(sessions, Positions(), batch=3)
    await add_events(sessions, *(f"e{i}" for i in range(7)))
    assert await read_ids(sessions, 0) == []  # nothing is readable before it has a position

    assert [await sequencer.sequence_once() for _ in range(4)] == [3, 3, 1, 0]

    positions = await positions_of(sessions)
    ordered = sorted(positions, key=lambda event_id: positions[event_id])
    assert ordered == [f"e{i}" for i in range(7)]
    assert sequencer.positions.last == max(positions.values())
    assert [event_id for event_id, _ in await read_ids(sessions, 0)] == ordered


async def test_positions_never_restart_once_every_event_is_pruned(sessions):
    sequencer = Sequencer(sessions, Positions())
    await add_events(sessions, "a", "b")
    await sequencer.sequence_once()
    last = sequencer.positions.last
    async with transaction(sessions) as session:
        await session.execute(delete(store.events))

    await add_events(sessions, "c")
    await sequencer.sequence_once()
    assert (await positions_of(sessions))["c"] > last
    # A new process learns where positions stand.
    restarted = Sequencer(sessions, Positions())
    await restarted.load()
    assert restarted.positions.last == sequencer.positions.last


async def test_a_reader_filters_by_user_and_type_and_gets_the_message_of_message_new(sessions):
    sequencer = Sequencer(sessions, Positions())
    async with transaction(sessions) as session:
        await store.write_rows(session, store.messages, [{
            "id": "m1", "cid": "messaging:ann", "type": "regular", "text": "Hi Ann", "user_id": "boss",
            "attachments": [], "custom": {"campaign_id": "k1"}, "poll_id": "", "created_by_campaign_id": "k1",
            "created_at": T}])
        await store.write_rows(session, store.events, [
            event_row("started"),
            event_row("channel.created:k1:messaging:ann", type_="channel.created", user_ids=["ann", "boss"]),
            event_row("message.new:m1", type_="message.new", user_ids=["ann", "boss"], message_id="m1"),
            event_row("message.new:m2", type_="message.new", user_ids=["bob", "boss"])])
    await sequencer.sequence_once()
    outbox = Outbox(sessions, sequencer)

    for_ann = await outbox.read(0, 10, user_ids=["ann", "nobody"])
    assert [e.id for e in for_ann] == ["channel.created:k1:messaging:ann", "message.new:m1"]
    assert for_ann[1].message.text == "Hi Ann" and for_ann[1].message.custom["campaign_id"] == "k1"
    assert for_ann[0].sequence < for_ann[1].sequence
    assert [e.id for e in await outbox.read(0, 10, types=["message.new"])] == ["message.new:m1", "message.new:m2"]
    assert [e.id for e in await outbox.read(for_ann[0].sequence, 1)] == ["message.new:m1"]  # limit, after


async def test_a_waiting_reader_wakes_when_events_are_positioned(sessions):
    sequencer = Sequencer(sessions, Positions())
    await sequencer.load()
    waiter = asyncio.create_task(sequencer.positions.wait_past(sequencer.positions.last, 30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await add_events(sessions, "a")
    await sequencer.sequence_once()
    assert await asyncio.wait_for(waiter, 30) is True
    assert await sequencer.positions.wait_past(sequencer.positions.last, 0.01) is False  # nothing newer


@pytest.mark.skipif(not PG_ADMIN_URL, reason="out-of-order commits need PostgreSQL (SQLite has one writer)")
async def test_an_event_committed_after_a_later_inserted_one_is_not_skipped_by_a_resuming_reader(sessions):
    sequencer = Sequencer(sessions, Positions())
    early, late = sessions(), sessions()
    try:
        # `early` inserts first (lower insertion key) but commits last.
        await early.begin()
        await store.write_rows(early, store.events, [event_row("early")])
        await late.begin()
        await store.write_rows(late, store.events, [event_row("late")])
        await late.commit()
        async with transaction(sessions) as session:
            keys = dict((await session.execute(select(store.events.c.id, store.events.c.sequence))).all())
        assert "early" not in keys  # not visible yet

        await sequencer.sequence_once()
        seen = await read_ids(sessions, 0)
        assert [event_id for event_id, _ in seen] == ["late"]
        resume_after = seen[-1][1]

        await early.commit()
        await sequencer.sequence_once()
    finally:
        await early.close()
        await late.close()

    # Reading by insertion key would skip it: "early" sorts before what the reader saw.
    async with transaction(sessions) as session:
        keys = dict((await session.execute(select(store.events.c.id, store.events.c.sequence))).all())
    assert keys["early"] < keys["late"]
    assert [event_id for event_id, _ in await read_ids(sessions, resume_after)] == ["early"]


@pytest.mark.skipif(not PG_ADMIN_URL, reason="the advisory lock is PostgreSQL's")
async def test_replicas_never_position_at_once(sessions):
    first, second = Sequencer(sessions, Positions(), batch=2), Sequencer(sessions, Positions(), batch=2)
    await add_events(sessions, *(f"e{i}" for i in range(9)))
    while sum(await asyncio.gather(first.sequence_once(), second.sequence_once())):
        pass
    positions = await positions_of(sessions)
    assert None not in positions.values()
    assert sorted(positions, key=lambda event_id: positions[event_id]) == [f"e{i}" for i in range(9)]
