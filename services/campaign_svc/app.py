"""Composition root of the campaign service: `build(settings, ...)` wires engine and servicers."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from services.kit.config import Settings
from services.kit.db import make_engine
from services.kit.server import Service
from services.campaign_svc.servicer import CampaignServiceServicer


class CampaignApp(Service):
    name = "campaign"

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine

    def service_names(self) -> list[str]:
        return [campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name]

    def register(self, server: grpc.aio.Server) -> None:
        campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(CampaignServiceServicer(), server)

    async def stop(self) -> None:
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None) -> CampaignApp:
    return CampaignApp(settings, engine or make_engine(settings.db_url("campaign")))
