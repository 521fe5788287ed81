"""The delivery service's writing calls (here PublishEvent) take SQLite's one writer in turns: while
they wait for the write lock they hold no pooled connection, so reads go on."""

from __future__ import annotations

import asyncio

from harness import eventually, sqlite_write_lock
from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2 as ds

WAITING_WRITERS = 20  # more than the pool's 5 + 10 connections
# The writer holding the turn has one (waiting in SQLite's busy handler); the service's own
# background readers (sequencer, dispatch) may hold one or two for a moment. Without turns: 6+.
HELD_AT_MOST = 3


async def test_reads_answer_while_writing_calls_wait_for_the_write_lock(make_system):
    system, stubs = await make_system()
    engine = system.servers["delivery"].service.engine
    with sqlite_write_lock(system.settings.delivery_db_url):
        writers = [asyncio.ensure_future(stubs.deliveries.PublishEvent(ds.PublishEventRequest(event=delivery_pb2.Event(
            id=f"campaign.started:c{i}", type="campaign.started", campaign=campaign_pb2.Campaign(id=f"c{i}")))))
            for i in range(WAITING_WRITERS)]
        await eventually(lambda: engine.pool.checkedout(), lambda n: n >= 1, what="the first writer's connection")
        usage = await asyncio.wait_for(stubs.deliveries.GetUsage(ds.GetUsageRequest()), 20)
        assert usage.messages_sent == 0
        assert engine.pool.checkedout() <= HELD_AT_MOST, "writers waiting for the lock hold pooled connections"
        assert not any(w.done() for w in writers)
    published = await asyncio.wait_for(asyncio.gather(*writers), 60)
    assert len({answer.event.sequence for answer in published}) == WAITING_WRITERS
