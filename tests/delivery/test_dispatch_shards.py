"""A destination's event log in shards (position % shards; a campaign's own events in shard 0):
every event is posted once by its shard, a campaign's end or pause waits for every earlier event
of every shard and its later campaign events wait behind it (the fence), and shard
positions carry over from the single position of before shards, or from another shard count,
without skipping an event. (Shards shared by replicas: test_replicas.py, and
tests/flows/test_delivery_replicas.py with real processes.)"""

from __future__ import annotations

from harness import TEST_SECRET, eventually
from services.delivery_svc import store
from services.delivery_svc.dispatcher import Dispatcher, DispatchSettings
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.sequencer import Positions, Sequencer
from services.delivery_svc.webhooks import WebhookDestination, webhook_id
from services.kit.config import new_webhook_secret
from services.kit.db import transaction, utcnow
from services.kit.webhook_signing import webhook_key

from delivery.event_log import add_and_position, message_new
from delivery.receiver import Receiver, receiving

SHARDS = 3
RETRIES = DispatchSettings(backoff_s=0.1, backoff_max_s=0.2)


def recent(row: dict) -> dict:
    return row | {"created_at": utcnow()}  # within retention: sent, not expired


def delivered(receiver: Receiver) -> list[str]:
    """The webhook ids answered 2xx, in arrival order."""
    return [r.headers["x-webhook-id"] for r in receiver.requests if r.status < 300]


async def test_each_shard_posts_its_events_once_and_a_campaign_s_end_waits_for_every_shard(sessions):
    sequencer = Sequencer(sessions, Positions())
    async with receiving() as receiver:
        webhook = WebhookDestination(f"{receiver.url}/hook", TEST_SECRET, webhook_key(new_webhook_secret()))
        dispatcher = Dispatcher(sessions, Outbox(sessions, sequencer), [webhook], RETRIES, shards=SHARDS)
        await dispatcher.start()
        messages = [f"message.new:m{n}" for n in range(8)]
        ends = ["campaign.paused:k1", "campaign.resumed:k1", "campaign.completed:k1"]
        # The first message fails three times (retried for a while); the pause, written after the
        # messages, waits for them all, that one included, and the campaign's later events for it.
        receiver.answer_first(webhook_id(messages[0]), 503, 503, 503)
        try:
            await add_and_position(sequencer, [recent(message_new(m, "u1")) for m in messages] + [
                recent(message_new(end, "u1") | {"type": end.split(":")[0], "cid": ""}) for end in ends])
            ids = [webhook_id(m) for m in messages + ends]
            order = await eventually(lambda: delivered(receiver), lambda got: len(got) >= len(ids),
                                     what="every event delivered")
            await eventually(lambda: dispatcher.backlog(), lambda b: b == {"webhook": 0}, what="every shard passed")
        finally:
            await dispatcher.close()
    assert sorted(order) == sorted(ids)  # each once
    assert order[-3:] == [webhook_id(end) for end in ends]  # after the retried one too, in their order
    assert dispatcher.counters("webhook").retried == 3
    async with transaction(sessions) as session:
        positions = await store.shard_positions(session, "webhook", SHARDS)
    assert positions == {shard: sequencer.positions.last for shard in range(SHARDS)}


async def test_shards_start_where_the_single_position_of_before_stood_and_a_new_count_from_the_slowest(sessions):
    now = utcnow()
    async with transaction(sessions) as session:
        # As migration 0008 leaves the position of before shards: shard 0 of 1.
        assert await store.claim_dispatch_shards(session, "webhook", 1, 0, now) == {0: 0}
        await store.move_dispatch_position(session, "webhook", 1, 0, 40, now)
    async with transaction(sessions) as session:
        assert await store.claim_dispatch_shards(session, "webhook", 4, 99, now) == {0: 40, 1: 40, 2: 40, 3: 40}
        for shard, position in enumerate((41, 47, 44, 50)):
            await store.move_dispatch_position(session, "webhook", 4, shard, position, now)
        assert await store.shard_positions(session, "webhook", 1) == {}  # the old count's row went
        assert await store.dispatch_positions_of(session, ["webhook"]) == {"webhook": 41}  # retention's
    async with transaction(sessions) as session:
        # HERALD_DISPATCH_SHARDS changed: from the slowest shard, so nothing is skipped.
        assert await store.claim_dispatch_shards(session, "webhook", 2, 99, now) == {0: 41, 1: 41}
        assert await store.claim_dispatch_shards(session, "push", 2, 99, now) == {0: 99, 1: 99}  # new: at `start`
