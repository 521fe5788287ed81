"""SendTestDelivery (DESIGN §10.2): real messages of a campaign snapshot to a few named recipients.

They go through the sending code as a preview does (services.delivery_svc.named), but for real:
EnsureChannels creates the channel the campaign would create. Written in ONE transaction: the
messages (their custom says `test: true`), their message.new and channel.created events (so
in-app subscribers, push and webhooks take them like any other, the campaign's skip flags
applying) and the month's usage, all of it or nothing: a test send the monthly capacity has no
room for is RESOURCE_EXHAUSTED with no message written. Never a recipient-log row or a delivery
counter: a test send is not in the campaign's stats (reads of test messages are not counted
either), and its recipients still get the campaign when it runs.

Ids: a test send's id derives from campaign + request_id; its messages' ids ("test-" + a UUID)
and its events' derive from that and the recipient. So they are never the id of a message the
campaign sends (a plain UUID of campaign + recipient), and a retried call (same request_id) has
the same ones: it writes and counts only what the first call did not, and answers with the
messages as stored. Its EnsureChannels outcomes are keyed by the test send too, so the campaign's
own run later finds the channel without counting it as created.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from services.delivery_svc import convert, store
from services.delivery_svc.compose import id_of_test_message
from services.delivery_svc.named import Composed, NamedRecipients
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.outcomes import SENT, Outcome
from services.delivery_svc.usage import capacity_exhausted, check_room
from services.kit.campaign_rules import check_test_recipients
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.errors import Violations
from services.kit.event_types import CHANNEL_CREATED
from services.kit.fields import check_id

TEST_SEND_NAMESPACE = uuid.UUID("0b7c2e54-9f3a-4d1e-8c6b-5a2f7e913d40")


def id_of_test_send(campaign_id: str, request_id: str) -> str:
    """A test send's id: the same for a retried call (same campaign, same request_id)."""
    return str(uuid.uuid5(TEST_SEND_NAMESPACE, f"{campaign_id}\x00{request_id}"))


def check_request(campaign: campaign_pb2.Campaign, user_ids: Sequence[str], cids: Sequence[str],
                  request_id: str) -> None:
    """A request_id, and exactly one of user_ids and cids (services.kit.campaign_rules); a user_ids
    audience has only user targets (whether segments are of users or channels, campaign_svc knows)."""
    v = Violations()
    check_test_recipients(v, user_ids, cids, sender_id=campaign.sender_id,
                          channels=False if campaign.user_ids else None)
    check_id(v, request_id, "request_id")
    v.raise_if_any()


class _NoRoom(Exception):
    """The month's capacity had no room for the messages: the transaction is rolled back."""


class TestSends:
    __test__ = False  # not a pytest class, whoever imports it

    def __init__(self, sessions: async_sessionmaker[AsyncSession], named: NamedRecipients, notifier: Notifier, *,
                 monthly_capacity: int) -> None:
        self.sessions = sessions
        self.named = named
        self.notifier = notifier  # a write wakes the sequencer (PostgreSQL positions the events)
        self.capacity = max(0, monthly_capacity)

    async def send(self, campaign: campaign_pb2.Campaign, user_ids: Sequence[str], cids: Sequence[str],
                   request_id: str) -> list[campaign_pb2.CampaignPreview]:
        """Each named recipient, distinct, in the order named: sent with its test message as
        stored, or why it was skipped or failed."""
        check_request(campaign, user_ids, cids, request_id)
        user_ids, cids = list(dict.fromkeys(user_ids)), list(dict.fromkeys(cids))
        send_id = id_of_test_send(campaign.id, request_id)
        message_ids = {target: id_of_test_message(send_id, target) for target in cids or user_ids}
        await self._check_room(list(message_ids.values()))  # before EnsureChannels makes any channel
        composed = await self.named.compose(campaign, user_ids, cids, dry_run=False, test_send_id=send_id)
        written = await self._write(campaign, [c.outcome for c in composed], list(message_ids.values()))
        self.notifier.notify(campaign.id)
        return [_answer(c, written.get(message_ids[c.outcome.target_id])) for c in composed]

    async def _check_room(self, message_ids: list[str]) -> None:
        """RESOURCE_EXHAUSTED unless the month has room for every message not written yet."""
        async with transaction(self.sessions) as session:
            unsent = len(message_ids) - len(await store.messages_by_ids(session, message_ids))
            if unsent:
                await check_room(session, self.capacity, unsent)

    async def _write(self, campaign: campaign_pb2.Campaign, outcomes: list[Outcome],
                     message_ids: list[str]) -> dict[str, Row[Any]]:
        """Messages, events, the month's usage and the campaign's skip flags in one transaction;
        returns the test messages as stored, by id."""
        try:
            async with write_transaction(self.sessions, urgent=True) as session:
                now = utcnow()
                fresh = await store.insert_test_messages(
                    session, [_columns(o.message, now) for o in outcomes if o.message is not None])
                if await store.take_monthly_usage(session, now, len(fresh), self.capacity, whole=True) < len(fresh):
                    raise _NoRoom()
                await store.insert_events(session, self.named.values, [
                    e for o in outcomes for e in o.events if e.type == CHANNEL_CREATED or e.message_id in fresh])
                await store.record_test_send(session, campaign.id, campaign.skip_push, campaign.skip_webhook, now)
                return await store.messages_by_ids(session, message_ids)
        except _NoRoom:
            # Taken meanwhile by a campaign: no message, but the channels made are announced.
            async with write_transaction(self.sessions, urgent=True) as session:
                now = utcnow()
                await store.insert_events(session, self.named.values,
                                          [e for o in outcomes for e in o.events if e.type == CHANNEL_CREATED])
                await store.record_test_send(session, campaign.id, campaign.skip_push, campaign.skip_webhook, now)
            self.notifier.notify(campaign.id)
            raise capacity_exhausted(self.capacity, now) from None


def _columns(message: store.MessageRow, now: dt.datetime) -> dict[str, Any]:
    """A composed message as the `messages` columns take it, marked `test: true`."""
    return {**message._asdict(), "attachments": json.loads(message.attachments),
            "custom": {**json.loads(message.custom), "test": True}, "created_at": now}


def _answer(composed: Composed, written: Row[Any] | None) -> campaign_pb2.CampaignPreview:
    """A named recipient's answer: its test message as stored, else why it was skipped or failed.
    A message written by an earlier call with this request_id stands, whatever this one composed."""
    outcome, ensured = composed.outcome, composed.ensured
    if written is None:
        answer = convert.recipient_preview(outcome, ensured)
    else:
        if outcome.status != SENT:
            outcome = Outcome(outcome.target_id, SENT, cid=written.cid)
        answer = convert.recipient_preview(outcome, ensured, convert.stored_preview_message(written))
    if ensured is not None and ensured.cid:
        # Whether it existed before the test send: `created` is kept per test send, so a retry says the same.
        answer.channel_exists = not ensured.created
    return answer
