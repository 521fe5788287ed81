"""Composition root of the segment service: `build(settings, ...)` wires engine and servicers."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.segment.v1 import directory_service_pb2, directory_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.config import Settings
from services.kit.db import make_engine
from services.kit.server import Service
from services.segment_svc.servicer import DirectoryServiceServicer, SegmentServiceServicer


class SegmentApp(Service):
    name = "segment"

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine

    def service_names(self) -> list[str]:
        return [directory_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name, segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name]

    def register(self, server: grpc.aio.Server) -> None:
        directory_service_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryServiceServicer(), server)
        segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(SegmentServiceServicer(), server)

    async def stop(self) -> None:
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None) -> SegmentApp:
    return SegmentApp(settings, engine or make_engine(settings.db_url("segment")))
