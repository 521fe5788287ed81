"""SendTestCampaign (DESIGN §10.2): real test messages of a campaign to up to 10 named users or
channels, written by the delivery service's sending code (SendTestDelivery) from the snapshot
StartCampaign would hand over, in any status but while it is being sent (in progress or paused).

Test messages say `custom.test: true`, have ids of their own, go out with their events and push
like any message, count in the monthly capacity and never in the campaign's stats; their
recipients still get the campaign when it runs. Whether a recipient is in the audience is not
checked (colleagues seldom are); an unknown one comes back skipped, as the recipient log would
say. The sender is refused: a campaign never reaches its sender.

Idempotency: the messages' ids derive from campaign, `request_id` and recipient, so a call
retried with the same request_id sends nobody twice. A request without one gets a fresh one
(returned with the answer): such calls each send again, and the one call made upstream for them
is still retried safely.
"""

from __future__ import annotations

import uuid

from herald.campaign.v1 import campaign_service_pb2
from services.campaign_svc import convert, reasons
from services.campaign_svc.lifecycle import Campaigns
from services.campaign_svc.store import Status
from services.campaign_svc.upstream import Upstream
from services.kit.campaign_rules import check_test_recipients
from services.kit.errors import FailedPrecondition, Violations
from services.kit.fields import check_id


class TestSends:
    __test__ = False  # not a pytest class, whoever imports it

    def __init__(self, campaigns: Campaigns, upstream: Upstream) -> None:
        self.campaigns = campaigns
        self.upstream = upstream

    async def send(self, request: campaign_service_pb2.SendTestCampaignRequest
                   ) -> campaign_service_pb2.SendTestCampaignResponse:
        v = Violations()
        check_id(v, request.id, "id")
        check_test_recipients(v, request.user_ids, request.cids)
        check_id(v, request.request_id, "request_id", required=False)
        v.raise_if_any()
        row = await self.campaigns.get(request.id)
        # The audience says which: user_ids and user segments have users, channel segments channels.
        v = Violations()
        check_test_recipients(v, request.user_ids, request.cids, sender_id=row["sender_id"],
                              channels=convert.has_channel_audience(row))
        v.raise_if_any()
        if row["status"] in Status.SENDING:  # in progress or paused: tested before or after, not meanwhile
            raise FailedPrecondition(f"campaign {row['id']} is {row['status'].replace('_', ' ')}; test it before "
                                     "it starts or once it has ended", reason=reasons.CAMPAIGN_NOT_TESTABLE)
        request_id = request.request_id or str(uuid.uuid4())
        recipients = await self.upstream.send_test_delivery(convert.campaign(row), request.user_ids, request.cids,
                                                            request_id)
        return campaign_service_pb2.SendTestCampaignResponse(recipients=recipients, request_id=request_id)
