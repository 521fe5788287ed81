"""PreviewCampaign (DESIGN §10.2): what one recipient would get, in any status, rendered by the
delivery service's sending code from the snapshot StartCampaign would hand over (PreviewDelivery);
nothing is written, here or there.

An unknown receiver is no error: it comes back skipped with `user_not_found`, as the recipient
log would show it (DESIGN §5: users that do not exist are skipped). Whether the recipient is in
the campaign's audience is not checked: the preview shows what they would get if they were.
"""

from __future__ import annotations

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2
from services.campaign_svc import convert
from services.campaign_svc.lifecycle import Campaigns
from services.campaign_svc.upstream import Upstream
from services.kit.campaign_rules import check_preview_recipient
from services.kit.errors import Violations
from services.kit.fields import check_id


class Previews:
    def __init__(self, campaigns: Campaigns, upstream: Upstream) -> None:
        self.campaigns = campaigns
        self.upstream = upstream

    async def preview(self, request: campaign_service_pb2.PreviewCampaignRequest) -> campaign_pb2.CampaignPreview:
        v = Violations()
        check_id(v, request.id, "id")
        check_preview_recipient(v, request.receiver_id, request.cid)
        v.raise_if_any()
        row = await self.campaigns.get(request.id)
        # The audience says which: user_ids and user segments have users, channel segments channels.
        v = Violations()
        check_preview_recipient(v, request.receiver_id, request.cid, channels=convert.has_channel_audience(row))
        v.raise_if_any()
        # A snapshot of a campaign stored under older rules is refused as StartDelivery would refuse it.
        return await self.upstream.preview_delivery(convert.campaign(row), request.receiver_id, request.cid)
