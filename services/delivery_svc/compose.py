"""Composing a batch once its channels are ensured: per recipient its message rendered from the
templates, the message.new event, and channel.created for a channel the campaign created, as
the store's row types. What is the same for the whole batch (its time, the template parts
without templates in them) is encoded once. The messages are rendered first, all of the batch
at once and off the event loop when the templates run Jinja code (CampaignTemplates.off_loop);
the rows are then made on the loop (the writer shares `values`).

A message's id derives from campaign + target, and an event's id from what it is about, so a
batch composed again after a crash makes the very same rows. A test send's rows derive their ids
from the test send instead (and its message ids start with `test-`), so they never take the id of
a message the campaign will send.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_service_pb2
from services.delivery_svc.addressing import Context
from services.delivery_svc.outcomes import CHANNEL_NOT_FOUND, FAILED, SENT, SKIPPED, CreatedChannel, Outcome
from services.delivery_svc.render import CampaignTemplates, RecipientFailed, channel_to_dict
from services.delivery_svc.store import TEST_MESSAGE_PREFIX, DriverTime, EventRow, MessageRow
from services.kit.bulk import DriverValues
from services.kit.event_types import CHANNEL_CREATED, MESSAGE_NEW
from services.kit.db import utcnow

MESSAGE_ID_NAMESPACE = uuid.UUID("6f1d3a8e-3c57-4f0e-9a43-2b8e4f0c9d11")
_NAMESPACE_BYTES = MESSAGE_ID_NAMESPACE.bytes
MESSAGE_TYPE = "regular"

# A recipient's rendered (text, attachments, custom), why it failed, or None: it has no channel.
Rendered = tuple[str, list[Any], dict[str, Any]] | RecipientFailed | None


def message_id(campaign_id: str, target_id: str) -> str:
    """The id of a campaign's message to one recipient: the same on every replay. It is
    str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{campaign_id}\\x00{target_id}")), made without the
    UUID object (about a third of the cost, once per recipient; tests/delivery/test_compose.py)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{campaign_id}\x00{target_id}".encode(),
                                    usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_of_test_message(test_send_id: str, target_id: str) -> str:
    """The id of a test send's message to one recipient, as Composer makes it with `test_send_id`."""
    return TEST_MESSAGE_PREFIX + message_id(test_send_id, target_id)


class Composer:
    """Composes the batches of one campaign's delivery."""

    def __init__(self, campaign: campaign_pb2.Campaign, templates: CampaignTemplates, values: DriverValues, *,
                 test_send_id: str = "") -> None:
        self.campaign_id = campaign.id
        # What ids derive from: the campaign, or a test send of it (SendTestDelivery).
        self.id_scope = test_send_id or campaign.id
        self.message_prefix = TEST_MESSAGE_PREFIX if test_send_id else ""
        self.sender_id = campaign.sender_id
        self.templates = templates
        self.values = values
        # Template parts without templates in them are the same for everyone: encoded once.
        self.attachments_json = values.json(templates.static_attachments) \
            if templates.static_attachments is not None else ""
        self.custom_json = values.json(templates.static_custom) if templates.static_custom is not None else ""

    async def compose(self, specs: Sequence[directory_service_pb2.ChannelSpec], contexts: Sequence[Context],
                      response: directory_service_pb2.EnsureChannelsResponse) -> list[Outcome]:
        """The outcomes of the recipients the specs are for, in the order EnsureChannels answered."""
        templates, values = self.templates, self.values
        campaign_id, sender_id = self.campaign_id, self.sender_id
        id_scope, message_prefix = self.id_scope, self.message_prefix
        renders = await templates.off_loop(self._render, contexts, response)
        now = values.time(utcnow())
        outcomes = []
        for spec, rendered, ensured in zip(specs, renders, response.channels):
            target_id = spec.recipient_id
            if rendered is None:
                outcomes.append(Outcome(target_id, SKIPPED, ensured.skip_reason or CHANNEL_NOT_FOUND))
                continue
            cid = ensured.cid
            outcome = Outcome(target_id, SENT, cid=cid, created=ensured.created)
            members = list(ensured.member_ids)
            members_json = values.json(members)
            payload = delivery_pb2.Event(channel=ensured.channel).SerializeToString()
            if ensured.created:
                outcome.events.append(self._channel_created(ensured.cid, members_json, payload, now))
            if isinstance(rendered, RecipientFailed):
                outcome.status, outcome.reason, outcome.detail = FAILED, rendered.reason, str(rendered)
                outcomes.append(outcome)
                continue
            text, attachments, custom = rendered
            mid = message_prefix + message_id(id_scope, target_id)
            outcome.message = MessageRow(mid, cid, MESSAGE_TYPE, text, sender_id,
                                         self.attachments_json or values.json(attachments),
                                         self.custom_json or values.json(custom), templates.poll_id, campaign_id, now)
            outcome.events.append(EventRow(f"{MESSAGE_NEW}:{mid}", MESSAGE_NEW, campaign_id, cid, mid, members_json,
                                           payload, now))
            outcome.users = 1 if spec.receiver_id else sum(1 for m in members if m != sender_id)
            outcomes.append(outcome)
        return outcomes

    def _render(self, contexts: Sequence[Context],
                response: directory_service_pb2.EnsureChannelsResponse) -> list[Rendered]:
        """Each recipient's message rendered, in the order EnsureChannels answered."""
        templates = self.templates
        renders: list[Rendered] = []
        for context, ensured in zip(contexts, response.channels):
            if not ensured.cid:
                renders.append(None)
                continue
            if templates.needs_channel:
                context = {**context, "channel": channel_to_dict(ensured.channel)}
            try:
                renders.append(templates.message(context))
            except RecipientFailed as failure:
                renders.append(failure)
        return renders

    def created_channels(self, specs: Sequence[directory_service_pb2.ChannelSpec],
                         response: directory_service_pb2.EnsureChannelsResponse) -> list[CreatedChannel]:
        """The channels EnsureChannels created for a batch that will not be composed (a stop)."""
        now = self.values.time(utcnow())
        return [CreatedChannel(spec.recipient_id, self._channel_created(
                    ensured.cid, self.values.json(list(ensured.member_ids)),
                    delivery_pb2.Event(channel=ensured.channel).SerializeToString(), now))
                for spec, ensured in zip(specs, response.channels) if ensured.created]

    def _channel_created(self, cid: str, members_json: str, payload: bytes, now: DriverTime) -> EventRow:
        return EventRow(f"{CHANNEL_CREATED}:{self.id_scope}:{cid}", CHANNEL_CREATED, self.campaign_id, cid, "",
                        members_json, payload, now)
