"""PreviewDelivery: one recipient of a campaign snapshot rendered by the sending code itself.

The recipient is made into the batch StreamRecipients would hand over (an unknown user among its
`skipped_ids`), addressed by `Addressing`, its channel looked up with EnsureChannels' `dry_run`
(the segment service's own find-or-create rules, nothing written), and composed by `Composer`:
the very path a delivery takes, on a batch of one. So the preview's message, channel, members
and reasons are what sending would write, and there is no second renderer to drift from it.
Nothing is written here or upstream.
"""

from __future__ import annotations

import asyncio

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_pb2, segment_service_pb2
from services.delivery_svc import convert
from services.delivery_svc.addressing import Addressing
from services.delivery_svc.compose import Composer
from services.delivery_svc.deliveries import check_snapshot
from services.delivery_svc.outcomes import Outcome
from services.delivery_svc.render import sender_to_dict
from services.delivery_svc.upstream import SegmentClient
from services.kit.bulk import DriverValues
from services.kit.campaign_rules import check_preview_recipient
from services.kit.errors import Violations
from services.kit.limits import MAX_PREVIEW_DETAIL
from services.kit.templates import user_variables

# The recipient log's status → the preview's (the same cases, in the campaign's package).
PREVIEW_STATUS: dict[int, campaign_pb2.PreviewStatus] = {
    delivery_pb2.RECIPIENT_STATUS_SENT: campaign_pb2.PREVIEW_STATUS_SENT,
    delivery_pb2.RECIPIENT_STATUS_SKIPPED: campaign_pb2.PREVIEW_STATUS_SKIPPED,
    delivery_pb2.RECIPIENT_STATUS_FAILED: campaign_pb2.PREVIEW_STATUS_FAILED}


def check_recipient(campaign: campaign_pb2.Campaign, receiver_id: str, cid: str) -> None:
    """Exactly one of receiver_id and cid (services.kit.campaign_rules); a user_ids audience has
    only user targets (whether segments are of users or channels, campaign_svc knows)."""
    v = Violations()
    check_preview_recipient(v, receiver_id, cid, channels=False if campaign.user_ids else None)
    v.raise_if_any()


class Previews:
    def __init__(self, segments: SegmentClient, dialect_name: str) -> None:
        self.segments = segments
        self.values = DriverValues(dialect_name)  # what Composer encodes rows with

    async def preview(self, campaign: campaign_pb2.Campaign, receiver_id: str,
                      cid: str) -> campaign_pb2.CampaignPreview:
        check_recipient(campaign, receiver_id, cid)
        templates = await asyncio.to_thread(check_snapshot, campaign)  # compiling may take a while
        sender = user_variables(sender_to_dict(campaign, await self.segments.get_user(campaign.sender_id)))
        batch = await self._batch_of_one(receiver_id, cid)
        addressed = await templates.off_loop(Addressing(campaign, templates, sender).address, batch)
        if not addressed.specs:  # skipped (unknown user) or failed (its channel did not render)
            return _preview(addressed.outcomes[0], None)
        ensured = await self.segments.ensure_channels(campaign, addressed.specs, dry_run=True)
        composer = Composer(campaign, templates, self.values)
        composed = await composer.compose(addressed.specs, addressed.contexts, ensured)
        return _preview(composed[0], ensured.channels[0])

    async def _batch_of_one(self, receiver_id: str, cid: str) -> segment_service_pb2.StreamRecipientsResponse:
        """The recipient as StreamRecipients hands it over: a channel by its cid (whether it
        exists, EnsureChannels says, as when sending), a user with its data, or an unknown one
        among the skipped ids."""
        if cid:
            return segment_service_pb2.StreamRecipientsResponse(
                recipients=[segment_pb2.Recipient(target_id=cid, channel=directory_pb2.Channel(cid=cid))],
                target_type=segment_pb2.SEGMENT_TYPE_CHANNEL)
        user = await self.segments.get_user(receiver_id)
        if user is None:
            return segment_service_pb2.StreamRecipientsResponse(skipped_ids=[receiver_id],
                                                                target_type=segment_pb2.SEGMENT_TYPE_USER)
        return segment_service_pb2.StreamRecipientsResponse(
            recipients=[segment_pb2.Recipient(target_id=receiver_id, user=user)],
            target_type=segment_pb2.SEGMENT_TYPE_USER)


def _preview(outcome: Outcome, ensured: directory_service_pb2.EnsuredChannel | None) -> campaign_pb2.CampaignPreview:
    """An outcome as composed for the write (and its channel, as EnsureChannels' dry run found it)."""
    preview = campaign_pb2.CampaignPreview(
        target_id=outcome.target_id, status=PREVIEW_STATUS[outcome.status], reason=outcome.reason, cid=outcome.cid,
        detail=outcome.detail[:MAX_PREVIEW_DETAIL] if outcome.detail != outcome.reason else "")
    if ensured is not None and ensured.cid:
        preview.channel_exists = ensured.existed
        preview.channel.CopyFrom(ensured.channel)
        preview.member_ids.extend(ensured.member_ids)
    if outcome.message is not None:
        preview.message.CopyFrom(convert.preview_message(outcome.message))
    return preview

