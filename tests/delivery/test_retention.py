"""Retention: an event goes once older than HERALD_EVENT_RETENTION_H and passed by every
destination; one still undelivered by then becomes a dead letter, never dropped silently; dead
letters go after HERALD_DEAD_LETTER_RETENTION_H."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from harness import TEST_SECRET, eventually
from services.delivery_svc import store
from services.delivery_svc.dispatcher import EXPIRED, Dispatcher, DispatchSettings
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.retention import Retention
from services.delivery_svc.sequencer import Positions, Sequencer
from services.delivery_svc.webhooks import WebhookDestination
from services.kit.config import new_webhook_secret
from services.kit.db import transaction, utcnow
from services.kit.webhook_signing import webhook_key

from delivery.receiver import receiving

NOW = utcnow()
DAYS_AGO = NOW - dt.timedelta(days=2)


async def add_events(sessions, created_at: dt.datetime, *ids: str) -> int:
    """Adds and positions events; returns the last position."""
    async with transaction(sessions) as session:
        await store.write_rows(session, store.events, [
            {"id": i, "type": "campaign.started", "campaign_id": "k1", "cid": "", "message_id": "", "user_ids": [],
             "payload": b"", "created_at": created_at} for i in ids])
    sequencer = Sequencer(sessions, Positions())
    await sequencer.sequence_once()
    return sequencer.positions.last


async def kept(sessions, table) -> int:
    async with transaction(sessions) as session:
        return await session.scalar(select(func.count()).select_from(table))


async def test_old_events_go_only_once_every_destination_has_passed_them(sessions):
    passed = await add_events(sessions, DAYS_AGO, "old-1", "old-2")
    await add_events(sessions, DAYS_AGO, "old-but-not-passed")
    await add_events(sessions, NOW, "recent")
    async with transaction(sessions) as session:
        await store.claim_dispatch_shards(session, "webhook", 1, passed, NOW)
        await store.claim_dispatch_shards(session, "push", 1, passed + 100, NOW)
    retention = Retention(sessions, ["webhook", "push"], event_retention_h=24, dead_letter_retention_h=168)

    assert await retention.prune_once() == (2, 0)
    async with transaction(sessions) as session:
        left = [row.id for row in await store.events_after(session, 0, 10)]
    assert left == ["old-but-not-passed", "recent"]
    # A destination that has not started yet (no position) holds every event.
    assert await Retention(sessions, ["webhook", "later"], event_retention_h=24,
                           dead_letter_retention_h=168).prune_once() == (0, 0)


async def test_an_event_undelivered_past_retention_becomes_a_dead_letter_then_goes(sessions):
    await add_events(sessions, DAYS_AGO, "stale-1", "stale-2")
    async with transaction(sessions) as session:
        await store.claim_dispatch_shards(session, "webhook", 1, 0, NOW)  # behind: both still to send
    async with receiving() as receiver:
        webhook = WebhookDestination(f"{receiver.url}/hook", TEST_SECRET, webhook_key(new_webhook_secret()))
        dispatcher = Dispatcher(sessions, Outbox(sessions, Sequencer(sessions, Positions())), [webhook],
                                DispatchSettings(retention_h=24))
        await dispatcher.start()
        try:
            await eventually(lambda: kept(sessions, store.dead_letters), lambda n: n == 2, what="2 dead letters")
            runner = dispatcher.shards["webhook"][0]
            await eventually(lambda: runner.committed, lambda p: p > 0, what="the position past them")
        finally:
            await dispatcher.close()
        assert receiver.requests == []  # too old to send: dead-lettered, not posted
    async with transaction(sessions) as session:
        letters = list(await session.execute(select(store.dead_letters)))
    assert {(row.event_id, row.last_error, row.attempts) for row in letters} == {
        ("stale-1", EXPIRED, 0), ("stale-2", EXPIRED, 0)}

    retention = Retention(sessions, ["webhook"], event_retention_h=24, dead_letter_retention_h=168)
    assert await retention.prune_once() == (2, 0)
    # Dead letters have their own retention.
    assert await Retention(sessions, ["webhook"], event_retention_h=24, dead_letter_retention_h=-1).prune_once() \
        == (0, 2)
