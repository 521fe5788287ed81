"""Composition root of the delivery service: `build(settings, ...)` wires engine and servicers."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc
from services.kit.config import Settings
from services.kit.db import make_engine
from services.kit.server import Service
from services.delivery_svc.servicer import DeliveryServiceServicer, MessageServiceServicer


class DeliveryApp(Service):
    name = "delivery"

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine

    def service_names(self) -> list[str]:
        return [delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name, message_service_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name]

    def register(self, server: grpc.aio.Server) -> None:
        delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(DeliveryServiceServicer(), server)
        message_service_pb2_grpc.add_MessageServiceServicer_to_server(MessageServiceServicer(), server)

    async def stop(self) -> None:
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None) -> DeliveryApp:
    return DeliveryApp(settings, engine or make_engine(settings.db_url("delivery")))
