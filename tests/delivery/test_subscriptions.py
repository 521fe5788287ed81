"""Subscriptions and the fan-out on a real database, below gRPC: what a slow reader, pruning
under a reader, and the event_users index do."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete

from harness import DEADLINE_S, eventually
from delivery.event_log import add_and_position, message_new
from services.delivery_svc import reasons, store
from services.delivery_svc.fanout import Fanout
from services.delivery_svc.sequencer import Positions, Sequencer
from services.delivery_svc.subscriptions import Subscriptions
from services.kit.db import transaction
from services.kit.errors import OutOfRange


async def take(events, count: int) -> list:
    return [await asyncio.wait_for(anext(events), DEADLINE_S) for _ in range(count)]


async def test_a_follower_too_slow_for_its_queue_is_dropped_and_catches_up_from_the_database(sessions):
    sequencer = Sequencer(sessions, Positions())
    fanout = Fanout(sessions, sequencer.positions, queue_size=2, page=3)
    subscriptions = Subscriptions(sessions, fanout, page=3)
    events = subscriptions.events(await subscriptions.open(["ann"], 0, []))
    first = asyncio.ensure_future(anext(events))  # starts at the head, then waits
    await eventually(fanout.following, what="the subscription following live")
    following = asyncio.create_task(fanout.run())
    try:
        await add_and_position(sequencer, [message_new(f"e{i}", "ann" if i % 3 else "bob") for i in range(30)])
        got = [await asyncio.wait_for(first, DEADLINE_S), *await take(events, 19)]
        assert fanout.dropped >= 1  # its queue of 2 overflowed: the rest came from the database
        assert [event.id for event in got] == [f"e{i}" for i in range(30) if i % 3]
        # Caught up, it follows live again.
        await add_and_position(sequencer, [message_new("late", "ann")])
        assert [event.id for event in await take(events, 1)] == ["late"]
    finally:
        following.cancel()
        await events.aclose()
    assert fanout.following() == 0


async def test_pruning_that_overtakes_a_reader_ends_its_stream_out_of_range(sessions):
    sequencer = Sequencer(sessions, Positions())
    await add_and_position(sequencer, [message_new(f"e{i}", "ann") for i in range(10)])
    subscriptions = Subscriptions(sessions, Fanout(sessions, sequencer.positions), page=2)
    events = subscriptions.events(await subscriptions.open(["ann"], 1, []))
    assert [event.id for event in await take(events, 2)] == ["e1", "e2"]
    async with transaction(sessions) as session:
        await session.execute(delete(store.events).where(store.events.c.id.in_(["e0", "e1", "e2", "e3", "e4"])))

    # The next page would start after e2; e3 and e4 are gone.
    with pytest.raises(OutOfRange) as caught:
        await take(events, 1)
    assert caught.value.reason == reasons.SEQUENCE_EXPIRED
    assert caught.value.metadata == {"oldest_after_sequence": str(6 - 1)}  # e5 is at 6
    await events.aclose()


async def test_an_event_of_its_users_pruned_out_of_order_ends_a_readers_stream_out_of_range(sessions):
    sequencer = Sequencer(sessions, Positions())
    await add_and_position(sequencer, [message_new(f"e{i}", "ann" if i != 5 else "bob") for i in range(10)])
    async with transaction(sessions) as session:
        await session.execute(delete(store.events).where(store.events.c.id.in_(["e3", "e5"])))
    subscriptions = Subscriptions(sessions, Fanout(sessions, sequencer.positions), page=2)

    # bob's e5 is gone, but no event of ann's: ann's reader skips nothing she needs.
    after_the_gap = subscriptions.events(await subscriptions.open(["ann"], 5, []))
    assert [event.id for event in await take(after_the_gap, 4)] == ["e6", "e7", "e8", "e9"]
    await after_the_gap.aclose()
    events = subscriptions.events(await subscriptions.open(["ann"], 1, []))
    assert [event.id for event in await take(events, 2)] == ["e1", "e2"]
    with pytest.raises(OutOfRange) as caught:
        await take(events, 1)  # e3 was ann's
    assert caught.value.reason == reasons.SEQUENCE_EXPIRED
