"""The segment service's writers take SQLite's one writer in turns, so that writers waiting for
it hold no pooled connection and reads go on: while a hundred campaigns ensured channels at
once, GetUsers and CountRecipients used to wait for a connection behind writers asleep in
SQLite's busy handler."""

from __future__ import annotations

import asyncio

from harness import eventually, sqlite_write_lock
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds

WAITING_WRITERS = 20  # more than the pool's 5 + 10 connections


async def test_reads_answer_while_writers_wait_for_the_write_lock(svc):
    await svc.users("reader", name="R")
    engine = svc.app.engine
    with sqlite_write_lock(svc.app.settings.segment_db_url):
        writers = [asyncio.ensure_future(svc.directory.UpsertUsers(ds.UpsertUsersRequest(
            users=[directory_pb2.User(id=f"w{i}", name=f"W{i}")]))) for i in range(WAITING_WRITERS)]
        # One writer holds the turn and waits in the busy handler; the others wait for the turn.
        await eventually(lambda: engine.pool.checkedout(), lambda n: n >= 1, what="the first writer's connection")
        answer = await asyncio.wait_for(svc.directory.GetUsers(ds.GetUsersRequest(ids=["reader"])), 20)
        assert [u.id for u in answer.users] == ["reader"]
        assert engine.pool.checkedout() <= 2, "writers waiting for the lock hold pooled connections"
        assert not any(w.done() for w in writers)
    await asyncio.wait_for(asyncio.gather(*writers), 60)
    stored = await svc.directory.GetUsers(ds.GetUsersRequest(ids=[f"w{i}" for i in range(WAITING_WRITERS)]))
    assert len(stored.users) == WAITING_WRITERS
