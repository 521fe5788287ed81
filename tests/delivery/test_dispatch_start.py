"""A destination met for the first time starts at the end of the log (no backlog flood), and
every event positioned once the dispatcher has started is sent: start-up fixes the position
before the service serves, so a campaign begun at once is never mistaken for backlog."""

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
from delivery.receiver import receiving


async def test_events_positioned_right_after_start_are_sent_and_the_backlog_is_not(sessions):
    sequencer = Sequencer(sessions, Positions())
    await add_and_position(sequencer, [recent("backlog")])
    async with receiving() as receiver:
        webhook = WebhookDestination(f"{receiver.url}/hook", TEST_SECRET, webhook_key(new_webhook_secret()))
        dispatcher = Dispatcher(sessions, Outbox(sessions, sequencer), [webhook], DispatchSettings())
        await dispatcher.start()
        async with transaction(sessions) as session:  # fixed before start() returns, at the end of the log
            assert await store.dispatch_positions_of(session, ["webhook"]) == {"webhook": sequencer.positions.last}
        try:
            # No pause: the runners' tasks have not run yet when these are positioned.
            await add_and_position(sequencer, [recent("first"), recent("second")])
            await eventually(lambda: posted(receiver), lambda ids: len(ids) >= 2, what="both events posted")
        finally:
            await dispatcher.close()
        assert posted(receiver) == sorted([webhook_id("first"), webhook_id("second")])


def recent(event_id: str) -> dict:
    return message_new(event_id, "u1") | {"created_at": utcnow()}  # within retention: sent, not expired


def posted(receiver) -> list[str]:
    return sorted(r.headers["x-webhook-id"] for r in receiver.requests)
