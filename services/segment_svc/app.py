"""Composition root of the segment service: `build(settings, ...)` wires engine, servicers and
the background size worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.segment.v1 import directory_service_pb2, directory_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.config import Settings
from services.kit.db import make_engine, make_sessionmaker, transaction
from services.kit.migrate import migrate
from services.kit.server import Service
from services.kit.telemetry import Telemetry
from services.segment_svc import store
from services.segment_svc.migrations import SCHEMA
from services.segment_svc.servicer import DirectoryServiceServicer, SegmentServiceServicer
from services.segment_svc.sizes import SizeWorker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class SegmentApp(Service):
    name = "segment"
    telemetry: Telemetry

    def __init__(self, settings: Settings, engine: AsyncEngine, *, size_debounce_s: float = 0.2,
                 size_rest_s: float = 0.5, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.telemetry = telemetry or Telemetry.for_service(self.name, settings)
        self.sessions = make_sessionmaker(engine)
        self.sizes = SizeWorker(self.sessions, debounce_s=size_debounce_s, min_rest_s=size_rest_s)

    def service_names(self) -> list[str]:
        return [directory_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
                segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name]

    def register(self, server: grpc.aio.Server) -> None:
        directory_service_pb2_grpc.add_DirectoryServiceServicer_to_server(
            DirectoryServiceServicer(self.sessions, self.sizes, push_allow_private=self.settings.push_allow_private),
            server)
        segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(
            SegmentServiceServicer(self.sessions, self.sizes), server)

    async def start(self) -> None:
        await migrate(self.engine, SCHEMA)
        # A crash between a recount's claim and its write would leave a size stale: recount
        # every computed size once at start.
        async with transaction(self.sessions) as session:
            for segment_type in ("user", "channel"):
                await store.mark_sizes_dirty(session, segment_type)
        self.sizes.start()

    async def stop(self) -> None:
        await self.sizes.stop()
        await self.engine.dispose()


def build(settings: Settings, *, engine: AsyncEngine | None = None,
          tracer_provider: TracerProvider | None = None) -> SegmentApp:
    """The segment service; `tracer_provider` (tests) replaces the process's (OTEL_* variables)."""
    return SegmentApp(settings, engine or make_engine(settings.db_url("segment")),
                      telemetry=Telemetry.for_service("segment", settings, tracer_provider=tracer_provider))
