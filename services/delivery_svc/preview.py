"""PreviewDelivery: one recipient of a campaign snapshot rendered by the sending code itself.

The recipient goes through the sending code on a batch of one (services.delivery_svc.named), its
channel looked up with EnsureChannels' `dry_run`: the preview's message, channel, members and
reasons are what sending would write. Nothing is written here or upstream.
"""

from __future__ import annotations

from herald.campaign.v1 import campaign_pb2
from services.delivery_svc import convert
from services.delivery_svc.named import NamedRecipients
from services.kit.campaign_rules import check_preview_recipient
from services.kit.errors import Violations


def check_recipient(campaign: campaign_pb2.Campaign, receiver_id: str, cid: str) -> None:
    """Exactly one of receiver_id and cid (services.kit.campaign_rules); a user_ids audience has
    only user targets (whether segments are of users or channels, campaign_svc knows)."""
    v = Violations()
    check_preview_recipient(v, receiver_id, cid, channels=False if campaign.user_ids else None)
    v.raise_if_any()


class Previews:
    def __init__(self, named: NamedRecipients) -> None:
        self.named = named

    async def preview(self, campaign: campaign_pb2.Campaign, receiver_id: str,
                      cid: str) -> campaign_pb2.CampaignPreview:
        check_recipient(campaign, receiver_id, cid)
        [composed] = await self.named.compose(campaign, [receiver_id] if receiver_id else [], [cid] if cid else [],
                                              dry_run=True)
        return convert.recipient_preview(composed.outcome, composed.ensured)
