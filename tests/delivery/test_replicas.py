"""Two delivery replicas on one database (DESIGN §10.4): the monthly capacity is taken atomically
across them, retention prunes on one replica at a time, a delivery's lease and its partitions'
pass only once expired and fence the replica that lost them, a delivery's pace is shared by its
writers, and session locks' turns (each destination's dispatch shards) spread over the replicas
alive and pass on when their holder's connection ends.
(tests/flows/test_delivery_replicas.py runs replicas as processes.)"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from conftest import PG_ADMIN_URL
from harness import eventually
from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_service_pb2
from services.delivery_svc import retention, store
from services.delivery_svc.retention import Retention
from services.kit.advisory import SharedTurns, lock_key, numbered_lock_key, one_replica_at_a_time
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


@pytest.mark.skipif(not PG_ADMIN_URL, reason="leases are for PostgreSQL replicas (SQLite: one replica)")
async def test_a_delivery_lease_is_taken_only_once_expired_and_so_is_a_partition_s(sessions):
    first, second = store.Lease("replica-a", 30), store.Lease("replica-b", 30)
    async with transaction(sessions) as session:
        assert await store.insert_delivery(session, "held", campaign("held").SerializeToString(), 1, utcnow(), first)
    async with transaction(sessions) as session:
        assert await store.claim_unheld(session, second) == []  # alive: A's
        assert await store.renew_leases(session, first, ["held"]) == {"held"}
    await _expire(sessions, store.deliveries)  # A stops renewing (killed) before it cut the delivery
    async with transaction(sessions) as session:
        assert [row.campaign_id for row in await store.claim_unheld(session, second)] == ["held"]
    async with transaction(sessions) as session:
        assert await store.claim_unheld(session, first) == []  # B's now
        assert not await store.holds(session, "held", first)  # A's stop writes nothing
        assert await store.renew_leases(session, first, ["held"]) == set()
        await store.insert_partitions(session, "held", "", ["m"])  # B cuts it: (, m] and (m, end)
    async with transaction(sessions) as session:
        assert await store.claim_unheld(session, first) == []  # cut: shared by partitions now
        assert await store.claimable_campaign_ids(session) == ["held"]
        a = await store.claim_partition(session, "held", first)
        b = await store.claim_partition(session, "held", second)
        assert (a, b) == (store.Partition("held", 0, "", "m"), store.Partition("held", 1, "m", ""))
        assert await store.claim_partition(session, "held", second) is None  # both held
        assert await store.claimable_campaign_ids(session) == []
    await _expire(sessions, store.partitions, owner=first.owner)  # A dies mid-partition
    async with transaction(sessions) as session:
        assert await store.claim_partition(session, "held", second) == a  # from A's checkpoint
        assert not await store.hold_partition(session, a, first)  # A's batches write nothing
        assert not await store.holds(session, "held", first, a)  # nor its stop
        assert await store.finish_partition(session, a, first) is None
        assert await store.renew_leases(session, first, ["held"]) == set()
        assert await store.renew_leases(session, second, ["held"]) == {"held"}
        assert await store.finish_partition(session, b, second) is False  # one still open
        assert await store.finish_partition(session, a, second) is True  # the last: completes it


async def _expire(sessions, table: sa.Table, owner: str | None = None) -> None:
    async with transaction(sessions) as session:
        expired = sa.update(table).values(lease_until=utcnow() - dt.timedelta(seconds=1))
        await session.execute(expired.where(table.c.owner == owner) if owner else expired)


class Holder:
    """One replica's SharedTurns over `keys`, recording the jobs it runs."""

    def __init__(self, engine, keys: list[int]) -> None:
        self.running: set[int] = set()
        self.turns = SharedTurns(engine, [keys], self._work, presence=lock_key("zy"), retry_s=0.1, what="test")
        self.task = asyncio.create_task(self.turns.run())

    async def _work(self, key: int) -> None:
        self.running.add(key)
        try:
            await asyncio.Event().wait()
        finally:
            self.running.discard(key)

    async def end(self) -> None:
        self.task.cancel()  # its connection closes: the server releases its locks
        await asyncio.gather(self.task, return_exceptions=True)


def _spread(holders: list[Holder]) -> list[int]:
    return sorted(len(holder.running) for holder in holders)


@pytest.mark.skipif(not PG_ADMIN_URL, reason="advisory locks are PostgreSQL's")
async def test_a_session_lock_turn_passes_when_its_holder_s_connection_ends(sessions):
    engine = sessions.kw["bind"]
    key = numbered_lock_key("zz", 0)
    first = Holder(engine, [key])
    second: Holder | None = None
    try:
        await eventually(lambda: first.running, lambda r: r == {key}, what="the first replica's turn")
        second = Holder(engine, [key])
        await asyncio.sleep(0.5)  # the second looks five times meanwhile
        assert second.running == set()
        await first.end()
        await eventually(lambda: second.running, lambda r: r == {key}, what="the second replica's turn")
    finally:
        for holder in (first, second):
            if holder is not None:
                await holder.end()


@pytest.mark.skipif(not PG_ADMIN_URL, reason="advisory locks are PostgreSQL's")
async def test_shared_turns_spread_over_the_replicas_alive_and_pass_from_one_that_ends(sessions):
    engine = sessions.kw["bind"]
    keys = [numbered_lock_key("zz", n) for n in range(4)]
    a = Holder(engine, keys)
    holders = [a]
    try:
        await eventually(lambda: _spread(holders), lambda s: s == [4], what="the one replica runs all four")
        b = Holder(engine, keys)
        holders.append(b)
        await eventually(lambda: _spread(holders), lambda s: s == [2, 2], what="two replicas, two each")
        c = Holder(engine, keys)
        holders.append(c)
        await eventually(lambda: _spread(holders), lambda s: s == [1, 1, 2], what="three replicas: 2, 1, 1")
        assert set().union(*(h.running for h in holders)) == set(keys)  # each job run once
        await b.end()
        holders.remove(b)
        await eventually(lambda: _spread(holders), lambda s: s == [2, 2], what="b's jobs passed to the others")
        assert set().union(*(h.running for h in holders)) == set(keys)
    finally:
        for holder in holders:
            await holder.end()


async def test_a_delivery_s_pace_is_one_for_all_its_writers(sessions):
    """Each batch pushes the delivery's pace by its recipients ÷ the rate (store.take_pace), from
    the time the last one left it, whichever writer (replica) wrote it; an idle spell earns one
    batch's worth, no more."""
    async with transaction(sessions) as session:
        assert await store.insert_delivery(session, "paced", campaign("paced").SerializeToString(), 9, utcnow())
    async with transaction(sessions) as session:
        assert await store.take_pace(session, "paced", 1000.0, 0.5) == 1000.5  # replica A's first batch
        assert await store.take_pace(session, "paced", 1000.1, 0.5) == 1001.0  # B's, right after: after A's
        assert await store.take_pace(session, "paced", 1000.2, 0.5) == 1001.5
        assert await store.take_pace(session, "paced", 1001.8, 0.5) == 1002.0  # a little late: no time lost
        assert await store.take_pace(session, "paced", 2000.0, 0.5) == 2000.0  # idle meanwhile: one batch's credit


@pytest.mark.skipif(not PG_ADMIN_URL, reason="replicas share a PostgreSQL database (SQLite: one replica)")
async def test_the_replica_not_running_a_delivery_watches_it_and_stops_it(make_system):
    system, first = await make_system(delivery_batch_size=20, max_send_rate=150)  # 1,200 recipients: ~8 s
    second = Stubs(system.channel("segment"), system.channel_to(await system.start_replica("delivery")))
    users = [f"u{i:04d}" for i in range(1200)]
    await upsert_users(first.directory, ["sender", *users])
    await start(first, campaign("far", user_ids=users))  # runs on the first replica: it holds the lease
    seen: list[int] = []
    async for update in second.deliveries.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id="far")):
        seen.append(update.delivery.stats.stats_messages_sent)
        if len(set(seen)) >= 3:  # progress from the other replica's writes arrives here
            break
    stopped = await second.deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(campaign_id="far"))
    assert stopped.delivery.status == STOPPED
    done = await wait_done(second, "far")
    assert (done.status, done.stop_reason) == (STOPPED, campaign_pb2.STOP_REASON_REQUESTED)
    # The run on the first replica sees the stop at its next batch (its claim of the row fails):
    # no message is written after the stop committed.
    final = await wait_done(first, "far")
    assert 0 < final.stats.stats_messages_sent < len(users)
    messages = await all_messages(first, {"created_by_campaign_id": "far"})
    assert len(messages) == final.stats.stats_messages_sent
