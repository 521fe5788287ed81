"""Composition root of the delivery service: `build(settings, ...)` wires engine and servicers."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import TYPE_CHECKING

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc
from services.delivery_svc import store
from services.delivery_svc.dead_letters import DeadLetters
from services.delivery_svc.deliveries import Deliveries
from services.delivery_svc.destinations import Destination
from services.delivery_svc.dispatcher import Dispatcher, DispatchSettings
from services.delivery_svc.engine import Engine
from services.delivery_svc.fanout import Fanout
from services.delivery_svc.metrics import DeliveryMetrics
from services.delivery_svc.messages import Messages
from services.delivery_svc.migrations import SCHEMA
from services.delivery_svc.named import NamedRecipients
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.preview import Previews
from services.delivery_svc.push import Push
from services.delivery_svc.push_destination import PushDestination
from services.delivery_svc.retention import Retention
from services.delivery_svc.run import EngineDeps
from services.delivery_svc.sequencer import Positions, Sequencer
from services.delivery_svc.servicer import DeliveryServiceServicer, MessageServiceServicer
from services.delivery_svc.subscriptions import Subscriptions
from services.delivery_svc.testsend import TestSends
from services.delivery_svc.upstream import SegmentClient
from services.delivery_svc.usage import Usage
from services.delivery_svc.webhooks import WebhookDestination
from services.kit.clients import service_channel
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.db import make_engine, make_sessionmaker
from services.kit.migrate import migrate
from services.kit.server import Service
from services.kit.telemetry import Telemetry


class DeliveryApp(Service):
    name = "delivery"
    telemetry: Telemetry

    def __init__(self, settings: Settings, engine: AsyncEngine, segment_channel: grpc.aio.Channel | None,
                 telemetry: Telemetry | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()  # pacing's time
        self.engine = engine
        self.telemetry = telemetry = telemetry or Telemetry.for_service(self.name, settings)
        self.metrics = DeliveryMetrics(telemetry.registry) if telemetry.registry is not None else None
        self._segment_channel = segment_channel
        self.sessions = make_sessionmaker(engine)
        self.sequencer = Sequencer(self.sessions, Positions())
        # A batch written (any delivery change) wakes the sequencer to position its events.
        self.notifier = Notifier(on_change=self.sequencer.wake)
        self.sending: Engine | None = None
        self.deliveries: Deliveries | None = None
        self.push: Push | None = None  # the dispatcher's `push` destination
        self.dispatcher: Dispatcher | None = None
        self.previews: Previews | None = None
        self.test_sends: TestSends | None = None
        self.messages = Messages(self.sessions, self.notifier)
        self.outbox = Outbox(self.sessions, self.sequencer)
        self.dead_letters = DeadLetters(self.sessions, self._replays_queued)
        self.fanout = Fanout(self.sessions, self.sequencer.positions)
        self.subscriptions = Subscriptions(self.sessions, self.fanout)
        self.usage = Usage(self.sessions, monthly_capacity=settings.monthly_message_capacity)
        self._background: list[asyncio.Task[None]] = []

    def service_names(self) -> list[str]:
        return [delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name,
                message_service_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name]

    def _wire(self) -> tuple[Engine, Deliveries, Push, Dispatcher]:
        """The engine, the deliveries, push and the dispatcher, wired on first use: the channel is
        opened inside the running loop, not at build time."""
        if self.sending is None or self.deliveries is None or self.push is None or self.dispatcher is None:
            if self._segment_channel is None:
                self._segment_channel = service_channel(self.settings, "delivery", "segment", self.telemetry)
            segments = SegmentClient(self._segment_channel)
            lease = store.Lease(replica_name(), max(0.5, self.settings.lease_s)) if self.engine.dialect.name == "postgresql" \
                else None
            deps = EngineDeps(self.sessions, self.settings, segments, self.notifier, self.metrics, self.telemetry.tracer,
                              lease, self.clock)
            sending = self.sending = Engine(deps)
            self.deliveries = Deliveries(self.sessions, self.sending, self.notifier,
                                         monthly_capacity=self.settings.monthly_message_capacity)
            self.push = Push.from_settings(self.settings, segments)
            named = NamedRecipients(segments, self.engine.dialect.name)
            self.previews = Previews(named)
            self.test_sends = TestSends(self.sessions, named, self.notifier,
                                        monthly_capacity=self.settings.monthly_message_capacity)
            destinations: list[Destination] = [PushDestination(self.push)]
            if self.settings.webhook_url:
                destinations.append(WebhookDestination.from_settings(self.settings))
            self.dispatcher = Dispatcher(self.sessions, self.outbox, destinations,
                                         DispatchSettings.from_settings(self.settings),
                                         sending=lambda: bool(sending.runs), metrics=self.metrics,
                                         lease_s=self.settings.lease_s, shards=self.settings.dispatch_shard_count())
        return self.sending, self.deliveries, self.push, self.dispatcher

    def _replays_queued(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake_replays()

    def register(self, server: grpc.aio.Server) -> None:
        _, deliveries, push, _ = self._wire()
        assert self.previews is not None and self.test_sends is not None  # wired with the others
        delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(
            DeliveryServiceServicer(deliveries, self.outbox, self.usage, self.previews, self.test_sends), server)
        message_service_pb2_grpc.add_MessageServiceServicer_to_server(
            MessageServiceServicer(self.messages, self.dead_letters, self.subscriptions,
                                   vapid_public_key=push.vapid.public_key), server)

    async def start(self) -> None:
        await migrate(self.engine, SCHEMA)
        sending, _, _, dispatcher = self._wire()
        await self.sequencer.load()
        retention = Retention(self.sessions, dispatcher.destinations, event_retention_h=self.settings.event_retention_h,
                              dead_letter_retention_h=self.settings.dead_letter_retention_h)
        await dispatcher.start()  # its positions first: every event positioned from now on is sent
        self._background = [asyncio.create_task(self.sequencer.run(), name="event-sequencer"),
                            asyncio.create_task(retention.run(), name="retention"),
                            asyncio.create_task(self.fanout.run(), name="in-app-fanout")]
        await sending.resume_all()
        if sending.deps.lease is not None:
            self._background.append(asyncio.create_task(sending.keep_leases(), name="delivery-leases"))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.sending is not None:
            await self.sending.close()
        if self.dispatcher is not None:
            await self.dispatcher.close()  # closes its destinations (push too)
        if self._segment_channel is not None:
            await self._segment_channel.close()
        await self.engine.dispose()


def replica_name() -> str:
    """Names this process among replicas (host, pid, and a random part: pids repeat across restarts)."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build(settings: Settings, *, engine: AsyncEngine | None = None, segment_channel: grpc.aio.Channel | None = None,
          tracer_provider: TracerProvider | None = None, clock: Clock | None = None) -> DeliveryApp:
    """The delivery service; `tracer_provider` (tests) replaces the process's (OTEL_* variables),
    `clock` (tests) the wall clock sending is paced by."""
    return DeliveryApp(settings, engine or make_engine(settings.db_url("delivery")), segment_channel,
                       Telemetry.for_service("delivery", settings, tracer_provider=tracer_provider), clock)
