"""Rules of CampaignService.GetUsage: the month is checked here, where it enters; the delivery
service, which writes the messages and takes the monthly capacity, counts it."""

from __future__ import annotations

from herald.delivery.v1 import delivery_service_pb2
from services.campaign_svc.upstream import Upstream
from services.kit.errors import Violations
from services.kit.months import check_month


async def monthly_usage(upstream: Upstream, month: str) -> delivery_service_pb2.GetUsageResponse:
    """The usage of `month` ("YYYY-MM"; empty: the current UTC month)."""
    v = Violations()
    check_month(v, month, "month")
    v.raise_if_any()
    return await upstream.get_usage(month)
