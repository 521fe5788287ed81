"""gRPC handlers of the campaign service: parse and validate, call the logic, convert."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_service_pb2 as pb
from herald.campaign.v1 import campaign_service_pb2_grpc
from services.campaign_svc import convert
from services.campaign_svc.feeds import Feeds
from services.campaign_svc.lifecycle import Campaigns
from services.campaign_svc.preview import Previews
from services.campaign_svc.query import query_campaigns
from services.campaign_svc.testsend import TestSends
from services.campaign_svc.upstream import Upstream
from services.campaign_svc.usage import monthly_usage
from services.campaign_svc.views import Views
from services.kit.tracing import bind_campaign


class CampaignServiceServicer(campaign_service_pb2_grpc.CampaignServiceServicer):
    """Handlers of herald.campaign.v1.CampaignService."""

    def __init__(self, campaigns: Campaigns, views: Views, feeds: Feeds,
                 sessions: async_sessionmaker[AsyncSession], upstream: Upstream, previews: Previews,
                 test_sends: TestSends) -> None:
        self.campaigns = campaigns
        self.views = views
        self.feeds = feeds
        self.sessions = sessions
        self.upstream = upstream
        self.previews = previews
        self.test_sends = test_sends

    async def CreateCampaign(self, request: pb.CreateCampaignRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateCampaignResponse:
        campaign, users = await self.views.one(await self.campaigns.create(request), best_effort=True)
        return pb.CreateCampaignResponse(campaign=campaign, users=users)

    async def GetCampaign(self, request: pb.GetCampaignRequest,
                          context: grpc.aio.ServicerContext) -> pb.GetCampaignResponse:
        bind_campaign(request.id)
        row = await self.campaigns.get(request.id)
        campaign, users = await self.views.one(row, limit=request.limit, next=request.next, prev=request.prev)
        return pb.GetCampaignResponse(campaign=campaign, users=users)

    async def UpdateCampaign(self, request: pb.UpdateCampaignRequest,
                             context: grpc.aio.ServicerContext) -> pb.UpdateCampaignResponse:
        bind_campaign(request.id)
        campaign, users = await self.views.one(await self.campaigns.update(request), best_effort=True)
        return pb.UpdateCampaignResponse(campaign=campaign, users=users)

    async def DeleteCampaign(self, request: pb.DeleteCampaignRequest,
                             context: grpc.aio.ServicerContext) -> pb.DeleteCampaignResponse:
        bind_campaign(request.id)
        await self.campaigns.delete(request.id)
        return pb.DeleteCampaignResponse()

    async def QueryCampaigns(self, request: pb.QueryCampaignsRequest,
                             context: grpc.aio.ServicerContext) -> pb.QueryCampaignsResponse:
        rows, next_cursor, prev_cursor = await query_campaigns(self.sessions, request)
        campaigns = await self.views.many(rows, user_limit=request.user_limit)
        return pb.QueryCampaignsResponse(campaigns=campaigns, next=next_cursor, prev=prev_cursor)

    async def StartCampaign(self, request: pb.StartCampaignRequest,
                            context: grpc.aio.ServicerContext) -> pb.StartCampaignResponse:
        bind_campaign(request.id)  # its span, logs and the calls it makes (StartDelivery …) say the campaign
        campaign, users = await self.views.one(await self.campaigns.start(request), best_effort=True)
        return pb.StartCampaignResponse(campaign=campaign, users=users)

    async def StopCampaign(self, request: pb.StopCampaignRequest,
                           context: grpc.aio.ServicerContext) -> pb.StopCampaignResponse:
        bind_campaign(request.id)
        campaign, _ = await self.views.one(await self.campaigns.stop(request.id), best_effort=True)
        return pb.StopCampaignResponse(campaign=campaign)

    async def PauseCampaign(self, request: pb.PauseCampaignRequest,
                            context: grpc.aio.ServicerContext) -> pb.PauseCampaignResponse:
        bind_campaign(request.id)
        campaign, _ = await self.views.one(await self.campaigns.pause(request.id), best_effort=True)
        return pb.PauseCampaignResponse(campaign=campaign)

    async def ResumeCampaign(self, request: pb.ResumeCampaignRequest,
                             context: grpc.aio.ServicerContext) -> pb.ResumeCampaignResponse:
        bind_campaign(request.id)
        campaign, _ = await self.views.one(await self.campaigns.resume(request.id), best_effort=True)
        return pb.ResumeCampaignResponse(campaign=campaign)

    async def WatchCampaign(self, request: pb.WatchCampaignRequest,
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchCampaignResponse]:
        bind_campaign(request.id)
        await self.campaigns.get(request.id)
        async for campaign in self.feeds.watch(request.id):
            yield pb.WatchCampaignResponse(campaign=campaign)

    async def GetUsage(self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext) -> pb.GetUsageResponse:
        return convert.usage(await monthly_usage(self.upstream, request.month))

    async def PreviewCampaign(self, request: pb.PreviewCampaignRequest,
                              context: grpc.aio.ServicerContext) -> pb.PreviewCampaignResponse:
        bind_campaign(request.id)
        return pb.PreviewCampaignResponse(preview=await self.previews.preview(request))

    async def SendTestCampaign(self, request: pb.SendTestCampaignRequest,
                               context: grpc.aio.ServicerContext) -> pb.SendTestCampaignResponse:
        bind_campaign(request.id)
        return await self.test_sends.send(request)
