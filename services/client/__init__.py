"""A typed Python client over Herald's generated stubs.

    async with HeraldClient.from_env() as herald:
        reply = await herald.campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id="c1"))
        async for campaign in herald.watch_campaign("c1"):
            print(campaign.status, campaign.stats.progress)

Every call carries the bearer token. Retries are opt-in per call (`herald.idempotent(...)`),
and only UNAVAILABLE is retried, as DESIGN §7 says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.delivery.v1 import delivery_service_pb2_grpc, message_service_pb2_grpc
from herald.segment.v1 import directory_service_pb2_grpc, segment_service_pb2_grpc
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.config import Settings, settings_from_env
from services.kit.retry import call_idempotent

TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class HeraldClient:
    def __init__(self, *, segment_addr: str, campaign_addr: str, delivery_addr: str, token: str,
                 ca_file: str = "") -> None:
        self._channels = [open_channel(addr, token=token, ca_file=ca_file)
                          for addr in (segment_addr, campaign_addr, delivery_addr)]
        segment, campaign, delivery = self._channels
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(segment)
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(segment)
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign)
        self.deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(delivery)
        self.messages = message_service_pb2_grpc.MessageServiceStub(delivery)

    @classmethod
    def from_settings(cls, settings: Settings, subject: str = "client") -> "HeraldClient":
        settings = settings.with_secret()
        return cls(segment_addr=settings.segment_addr, campaign_addr=settings.campaign_addr,
                   delivery_addr=settings.delivery_addr, token=make_token(settings.api_secret, subject),
                   ca_file=settings.tls_ca_file)

    @classmethod
    def from_env(cls, subject: str = "client") -> "HeraldClient":
        return cls.from_settings(settings_from_env(), subject)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> "HeraldClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def idempotent(rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response], request: _Request, *,
                         timeout: float = 30.0) -> _Response:
        """Calls an idempotent unary RPC, retrying UNAVAILABLE with jittered backoff."""
        return await call_idempotent(rpc, request, timeout=timeout)

    async def watch_campaign(self, campaign_id: str, *, reconnect_delay_s: float = 0.5
                             ) -> AsyncIterator[campaign_pb2.Campaign]:
        """Yields the campaign as it changes until it completes or stops; reconnects when the
        campaign service restarts (its streams end with UNAVAILABLE)."""
        while True:
            try:
                stream = self.campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id))
                async for update in stream:
                    yield update.campaign
                    if update.campaign.status in TERMINAL:
                        return
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(reconnect_delay_s)
