"""Fixtures of the campaign service tests.

Each test gets the REAL segment service (its own database) and a fake delivery service, both on
port 0, and a campaign service built against them with an injectable clock; all calls go over
real channels. `restart()` stops the campaign server and starts a new app on the same database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace

import grpc
import pytest
from google.protobuf import struct_pb2

from harness import DEADLINE_S, TEST_SECRET, client_channel, eventually, serving, test_settings
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2 as ss, segment_service_pb2_grpc
from services.campaign_svc.app import CampaignApp, build
from services.kit.auth import service_token
from services.kit.clients import open_channel
from services.kit.server import RunningServer, start_server

from campaign.fake_delivery import FakeDelivery, serve_fake_delivery


class FakeClock:
    """Time that moves only when a test says so; sleeps are short real sleeps."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime.now(dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.01)


def ts(value: dt.datetime):
    from google.protobuf import timestamp_pb2
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s




@dataclass
class Env:
    settings: object
    clock: FakeClock
    delivery: FakeDelivery
    delivery_port: int
    segment_port: int
    campaign_db_url: str
    directory: directory_service_pb2_grpc.DirectoryServiceStub
    segments: segment_service_pb2_grpc.SegmentServiceStub
    server: RunningServer | None = None
    client: campaign_service_pb2_grpc.CampaignServiceStub | None = None
    _channels: list = field(default_factory=list)

    @property
    def app(self) -> CampaignApp:
        return self.server.service

    def upstream_channel(self, port: int) -> grpc.aio.Channel:
        channel = open_channel(f"127.0.0.1:{port}", token=service_token(TEST_SECRET, "campaign"))
        self._channels.append(channel)
        return channel

    def build_app(self, *, segment_port: int | None = None) -> CampaignApp:
        return build(self.settings, segment_channel=self.upstream_channel(segment_port or self.segment_port),
                     delivery_channel=self.upstream_channel(self.delivery_port), clock=self.clock)

    async def start(self, app: CampaignApp | None = None) -> None:
        self.server = await start_server(app or self.build_app(), self.settings, "127.0.0.1:0")
        channel = client_channel(self.server.port)
        self._channels.append(channel)
        self.client = campaign_service_pb2_grpc.CampaignServiceStub(channel)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0.2)
            self.server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # --- shortcuts ----------------------------------------------------------------------------

    async def users(self, *ids: str, **common) -> None:
        await self.directory.UpsertUsers(ds.UpsertUsersRequest(
            users=[directory_pb2.User(id=i, name=f"name of {i}", **common) for i in ids]))

    async def segment(self, type_: int = 1, targets: list[str] | None = None, **fields) -> str:
        segment_id = (await self.segments.CreateSegment(ss.CreateSegmentRequest(type=type_, **fields))).segment.id
        if targets:
            await self.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=segment_id, target_ids=targets))
        return segment_id

    async def create(self, **fields) -> campaign_pb2.Campaign:
        return (await self.client.CreateCampaign(request(**fields))).campaign

    async def get(self, campaign_id: str, **fields) -> campaign_pb2.Campaign:
        return (await self.client.GetCampaign(cs.GetCampaignRequest(id=campaign_id, **fields))).campaign

    async def start_campaign(self, campaign_id: str, **fields) -> campaign_pb2.Campaign:
        return (await self.client.StartCampaign(cs.StartCampaignRequest(id=campaign_id, **fields))).campaign

    async def stop_campaign(self, campaign_id: str) -> campaign_pb2.Campaign:
        return (await self.client.StopCampaign(cs.StopCampaignRequest(id=campaign_id))).campaign

    async def wait_status(self, campaign_id: str, status: int, timeout: float = DEADLINE_S) -> campaign_pb2.Campaign:
        return await eventually(lambda: self.get(campaign_id), lambda c: c.status == status,
                                what=f"{campaign_id} {campaign_pb2.CampaignStatus.Name(status)}", timeout_s=timeout)


def request(kind=cs.CreateCampaignRequest, **fields):
    """A valid Create/UpdateCampaignRequest by default: sender "sender", users u1 and u2."""
    fields.setdefault("sender_id", "sender")
    if "segment_ids" not in fields:
        fields.setdefault("user_ids", ["u1", "u2"])
    fields.setdefault("message_template", common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"))
    return kind(**fields)


@pytest.fixture
async def env(new_db_url, tmp_path):
    from services.kit.db import make_engine
    from services.segment_svc.app import SegmentApp

    settings = test_settings(tmp_path)
    segment_url = await new_db_url("segment")
    segment_settings = replace(settings, segment_db_url=segment_url)
    fake = FakeDelivery()
    delivery_server, delivery_port = await serve_fake_delivery(fake)
    segment_app = SegmentApp(segment_settings, make_engine(segment_url), size_debounce_s=0.05)
    async with serving(segment_app, segment_settings) as segment_server:
        segment_channel = client_channel(segment_server.port)
        campaign_settings = replace(settings, campaign_db_url=await new_db_url("campaign"))
        e = Env(settings=campaign_settings, clock=FakeClock(), delivery=fake, delivery_port=delivery_port,
                segment_port=segment_server.port, campaign_db_url=campaign_settings.campaign_db_url,
                directory=directory_service_pb2_grpc.DirectoryServiceStub(segment_channel),
                segments=segment_service_pb2_grpc.SegmentServiceStub(segment_channel))
        await e.users("sender", "u1", "u2", "u3")
        await e.start()
        try:
            yield e
        finally:
            await e.stop()
            for channel in e._channels:
                await channel.close()
            await segment_channel.close()
            await delivery_server.stop(0)
