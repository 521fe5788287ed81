"""Composition root of the delivery service: `build(settings, ...)` wires engine and servicers."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc
from services.delivery_svc.deliveries import Deliveries
from services.delivery_svc.engine import Engine
from services.delivery_svc.messages import Messages
from services.delivery_svc.migrations import SCHEMA
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.push import Push
from services.delivery_svc.run import EngineDeps
from services.delivery_svc.servicer import DeliveryServiceServicer, MessageServiceServicer
from services.delivery_svc.upstream import SegmentClient
from services.kit.clients import service_channel
from services.kit.config import Settings
from services.kit.db import make_engine, make_sessionmaker
from services.kit.migrate import migrate
from services.kit.server import Service


class DeliveryApp(Service):
    name = "delivery"

    def __init__(self, settings: Settings, engine: AsyncEngine, segment_channel: grpc.aio.Channel | None) -> None:
        self.settings = settings
        self.engine = engine
        self._segment_channel = segment_channel
        self.sessions = make_sessionmaker(engine)
        self.notifier = Notifier()
        self.sending: Engine | None = None
        self.deliveries: Deliveries | None = None
        self.push: Push | None = None  # the dispatcher's `push` destination
        self.messages = Messages(self.sessions, self.notifier)

    def service_names(self) -> list[str]:
        return [delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name,
                message_service_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name]

    def _wire(self) -> tuple[Engine, Deliveries, Push]:
        """The engine, the deliveries and push, wired on first use: the channel is opened inside
        the running loop, not at build time."""
        if self.sending is None or self.deliveries is None or self.push is None:
            if self._segment_channel is None:
                self._segment_channel = service_channel(self.settings, "delivery", "segment")
            segments = SegmentClient(self._segment_channel)
            deps = EngineDeps(self.sessions, self.settings, segments, self.notifier)
            self.sending = Engine(deps)
            self.deliveries = Deliveries(self.sessions, self.sending, self.notifier,
                                         monthly_capacity=self.settings.monthly_message_capacity)
            self.push = Push.from_settings(self.settings, segments)
        return self.sending, self.deliveries, self.push

    def register(self, server: grpc.aio.Server) -> None:
        _, deliveries, push = self._wire()
        delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(DeliveryServiceServicer(deliveries), server)
        message_service_pb2_grpc.add_MessageServiceServicer_to_server(
            MessageServiceServicer(self.messages, vapid_public_key=push.vapid.public_key), server)

    async def start(self) -> None:
        await migrate(self.engine, SCHEMA)
        sending, _, _ = self._wire()
        await sending.resume_all()

    async def stop(self) -> None:
        if self.sending is not None:
            await self.sending.close()
        if self.push is not None:
            await self.push.aclose()
        if self._segment_channel is not None:
            await self._segment_channel.close()
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None,
          segment_channel: grpc.aio.Channel | None = None) -> DeliveryApp:
    return DeliveryApp(settings, engine or make_engine(settings.db_url("delivery")), segment_channel)
