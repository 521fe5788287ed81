"""The turns a process's SQLite writers take (services.kit.db.WriterTurns, under write_transaction)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from services.kit.db import WriterTurns, make_engine, make_sessionmaker, write_transaction


async def _queue_behind_holder(turns: WriterTurns, writers: list[tuple[str, bool]]) -> list[str]:
    """One writer holds the turn while `writers` (name, urgent) queue up in that order; returns
    the order in which they got it."""
    order: list[str] = []

    async def write(name: str, urgent: bool) -> None:
        async with turns.turn(urgent=urgent):
            order.append(name)

    async with turns.turn():
        tasks = []
        for name, urgent in writers:
            tasks.append(asyncio.ensure_future(write(name, urgent)))
            await asyncio.sleep(0)  # queued in this order
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    return order


async def test_writers_take_turns_in_arrival_order():
    assert await _queue_behind_holder(WriterTurns(), [("a", False), ("b", False), ("c", False)]) == ["a", "b", "c"]


async def test_an_urgent_writer_goes_before_the_queued_background_writers():
    order = await _queue_behind_holder(WriterTurns(), [("batch1", False), ("batch2", False), ("start", True),
                                                       ("batch3", False), ("stop", True)])
    assert order == ["start", "stop", "batch1", "batch2", "batch3"]


async def test_a_writer_cancelled_while_queued_or_handed_the_turn_passes_it_on():
    turns = WriterTurns()
    got: list[str] = []

    async def write(name: str) -> None:
        async with turns.turn():
            got.append(name)

    async with turns.turn():
        queued = asyncio.ensure_future(write("cancelled while queued"))
        handed = asyncio.ensure_future(write("cancelled as the turn came"))
        last = asyncio.ensure_future(write("last"))
        await asyncio.sleep(0)
        queued.cancel()
    handed.cancel()  # the holder has handed it the turn; it has not run since
    await asyncio.wait_for(asyncio.gather(queued, handed, last, return_exceptions=True), 10)
    assert got == ["last"]
    async with asyncio.timeout(10):  # and the turn is free again
        async with turns.turn():
            pass


@pytest.mark.parametrize("urgent", [False, True])
async def test_write_transactions_on_sqlite_commit_in_turns(tmp_path, urgent):
    """Forty writers of one process at once: every one commits, none waits in SQLite's busy handler."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    sessions = make_sessionmaker(engine)
    try:
        async with write_transaction(sessions) as session:
            await session.execute(text("CREATE TABLE counter (n INTEGER)"))
            await session.execute(text("INSERT INTO counter VALUES (0)"))

        async def bump(i: int) -> None:
            async with write_transaction(sessions, urgent=urgent and i % 2 == 0) as session:
                n = (await session.execute(text("SELECT n FROM counter"))).scalar_one()
                await asyncio.sleep(0)  # another writer would interleave here without the turns
                await session.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

        await asyncio.wait_for(asyncio.gather(*(bump(i) for i in range(40))), 60)
        async with write_transaction(sessions) as session:
            assert (await session.execute(text("SELECT n FROM counter"))).scalar_one() == 40
    finally:
        await engine.dispose()
