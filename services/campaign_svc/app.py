"""Composition root of the campaign service: `build(settings, ...)` wires the engine, the
channels to segment_svc and delivery_svc, the clock, and the background work."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import TYPE_CHECKING

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from services.kit.clock import Clock, SystemClock
from services.campaign_svc.events import Publisher
from services.campaign_svc.feeds import Feeds
from services.campaign_svc.lifecycle import Campaigns
from services.campaign_svc.metrics import CampaignMetrics
from services.campaign_svc.migrations import SCHEMA
from services.campaign_svc.preview import Previews
from services.campaign_svc.scheduler import Scheduler
from services.campaign_svc.sending import Sending
from services.campaign_svc.servicer import CampaignServiceServicer
from services.campaign_svc.testsend import TestSends
from services.campaign_svc.upstream import Upstream
from services.campaign_svc.views import Views
from services.kit.clients import service_channel
from services.kit.config import Settings
from services.kit.db import make_engine, make_sessionmaker
from services.kit.migrate import migrate
from services.kit.server import Service
from services.kit.telemetry import Telemetry


class CampaignApp(Service):
    name = "campaign"
    telemetry: Telemetry

    def __init__(self, settings: Settings, engine: AsyncEngine, segment_channel: grpc.aio.Channel | None,
                 delivery_channel: grpc.aio.Channel | None, clock: Clock, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.telemetry = telemetry = telemetry or Telemetry.for_service(self.name, settings)
        metrics = CampaignMetrics(telemetry.registry) if telemetry.registry is not None else None
        self.clock = clock
        self._channels = (segment_channel, delivery_channel)
        self._owned_channels: list[grpc.aio.Channel] = []
        sessions = make_sessionmaker(engine)
        self.upstream = Upstream()
        self.views = Views(sessions, self.upstream)
        self.publisher = Publisher(sessions, self.upstream, clock, self.views)
        self.feeds = Feeds(self._load, self._on_sending, self._stamps)
        self.sending = Sending(sessions, self.upstream, clock, self.feeds, self.publisher,
                               owner=f"campaign-{uuid.uuid4().hex[:12]}")
        self.campaigns = Campaigns(sessions, self.upstream, clock, self.feeds, self.sending)
        self.scheduler = Scheduler(sessions, self.sending, clock, metrics=metrics, tracer=telemetry.tracer)
        self.sessions = sessions
        self._tasks: list[asyncio.Task] = []

    async def _load(self, campaign_id: str) -> campaign_pb2.Campaign | None:
        return await self.campaigns.load(campaign_id)

    async def _stamps(self, campaign_ids: list[str]) -> dict[str, tuple[int, dt.datetime]]:
        return await self.campaigns.stamps(campaign_ids)

    def _on_sending(self, campaign_id: str) -> None:
        self.sending.ensure_follower(campaign_id)

    def service_names(self) -> list[str]:
        return [campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name]

    def register(self, server: grpc.aio.Server) -> None:
        servicer = CampaignServiceServicer(self.campaigns, self.views, self.feeds, self.sessions, self.upstream,
                                           Previews(self.campaigns, self.upstream),
                                           TestSends(self.campaigns, self.upstream))
        campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(servicer, server)

    async def start(self) -> None:
        # Channels not given are opened here, inside the serving event loop (build() may run
        # before that loop exists, and a grpc.aio channel is bound to the loop that made it).
        segment_channel, delivery_channel = self._channels
        if segment_channel is None:
            segment_channel = service_channel(self.settings, "campaign", "segment", self.telemetry)
            self._owned_channels.append(segment_channel)
        if delivery_channel is None:
            delivery_channel = service_channel(self.settings, "campaign", "delivery", self.telemetry)
            self._owned_channels.append(delivery_channel)
        self.upstream.connect(segment_channel, delivery_channel)
        await migrate(self.engine, SCHEMA)
        self._tasks = [asyncio.create_task(self.publisher.run(), name="campaign-events"),
                       asyncio.create_task(self.scheduler.run(), name="campaign-scheduler"),
                       asyncio.create_task(self.feeds.watch_stored(), name="campaign-watchers")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sending.close()
        for channel in self._owned_channels:
            await channel.close()
        self._owned_channels.clear()
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None, segment_channel: grpc.aio.Channel | None = None,
          delivery_channel: grpc.aio.Channel | None = None, clock: Clock | None = None,
          tracer_provider: TracerProvider | None = None) -> CampaignApp:
    """The campaign service; channels default to the configured segment and delivery addresses
    (traced and counted; given ones are used as they are); `tracer_provider` (tests) replaces the
    process's (OTEL_* variables)."""
    return CampaignApp(settings, engine or make_engine(settings.db_url("campaign")), segment_channel,
                       delivery_channel, clock or SystemClock(),
                       Telemetry.for_service("campaign", settings, tracer_provider=tracer_provider))
