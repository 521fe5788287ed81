"""Two campaign replicas on one database, dialling the same segment and delivery services (DESIGN
§10.4): a schedule fires once, and a watcher on either replica sees the whole campaign to its end,
whichever replica started it."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2

from harness import TEST_SECRET, eventually, serve_system
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from services.kit.auth import service_token
from services.kit.db import make_engine

DRAFT = campaign_pb2.CAMPAIGN_STATUS_DRAFT
SCHEDULED = campaign_pb2.CAMPAIGN_STATUS_SCHEDULED
IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
AUDIENCE = 200
START_DELIVERY = "/herald.delivery.v1.DeliveryService/StartDelivery"


class FrozenClock:
    """The replicas' shared time: it moves only when the test says; sleeps are real."""

    def __init__(self) -> None:
        self._now = dt.datetime.now(dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Counting:
    """Counts a channel's calls by method and adds the service token (what open_channel adds)."""

    def __init__(self, calls: collections.Counter, token: str) -> None:
        self.calls = calls
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        self.calls[method] += 1
        return details._replace(metadata=[*(details.metadata or ()), self.header])


class _CountingUnary(_Counting, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _CountingStream(_Counting, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


@dataclass
class Replicas:
    clock: FrozenClock
    delivery_db_url: str
    directory: directory_service_pb2_grpc.DirectoryServiceStub
    campaigns: list[campaign_service_pb2_grpc.CampaignServiceStub] = field(default_factory=list)
    delivery_calls: list[collections.Counter] = field(default_factory=list)  # per replica

    def start_deliveries(self) -> int:
        return sum(calls[START_DELIVERY] for calls in self.delivery_calls)

    async def stored_events(self, campaign_id: str) -> list[str]:
        engine = make_engine(self.delivery_db_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(sa.text(
                    "SELECT type FROM events WHERE campaign_id = :id AND type LIKE 'campaign.%' ORDER BY sequence"),
                    {"id": campaign_id})
                return [row.type for row in rows]
        finally:
            await engine.dispose()


@pytest.fixture
async def replicas(new_db_url, tmp_path) -> AsyncIterator[Replicas]:
    """Segment and delivery, then two campaign replicas A and B on one campaign database."""
    # Paced (about 2 s for the audience), so that watchers see the campaign while it sends.
    async with serve_system(new_db_url, tmp_path, names=("segment", "delivery"), delivery_batch_size=20,
                            max_send_rate=100) as system:
        system.settings = replace(system.settings, campaign_db_url=await new_db_url("campaign"))
        replicas = Replicas(FrozenClock(), system.settings.delivery_db_url,
                            directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment")))
        upstream: list[grpc.aio.Channel] = []
        try:
            for _ in range(2):
                calls: collections.Counter = collections.Counter()
                token = service_token(TEST_SECRET, "campaign")
                delivery = grpc.aio.insecure_channel(system.settings.delivery_addr, interceptors=[
                    _CountingUnary(calls, token), _CountingStream(calls, token)])
                upstream.append(delivery)
                running = await system.start_replica("campaign", clock=replicas.clock, delivery_channel=delivery)
                replicas.campaigns.append(campaign_service_pb2_grpc.CampaignServiceStub(system.channel_to(running)))
                replicas.delivery_calls.append(calls)
            await replicas.directory.UpsertUsers(ds.UpsertUsersRequest(users=[
                directory_pb2.User(id=user_id, name=user_id) for user_id in ["boss", *_audience()]]))
            yield replicas
        finally:
            for running in system.replicas:  # before their channels close
                await running.stop(0.5)
            system.replicas.clear()
            for channel in upstream:
                await channel.close()


def _audience() -> list[str]:
    return [f"u{i:03d}" for i in range(AUDIENCE)]


async def _create(campaigns: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str) -> None:
    await campaigns.CreateCampaign(cs.CreateCampaignRequest(
        id=campaign_id, name=campaign_id, sender_id="boss", user_ids=_audience(),
        message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
        channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))


async def _watch(campaigns: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str,
                 into: list[campaign_pb2.Campaign]) -> None:
    async for response in campaigns.WatchCampaign(cs.WatchCampaignRequest(id=campaign_id)):
        into.append(response.campaign)


def _statuses(updates: list[campaign_pb2.Campaign]) -> list[int]:
    """The statuses a watcher saw, each once in the order it came."""
    return [u.status for i, u in enumerate(updates) if i == 0 or updates[i - 1].status != u.status]


async def _watched_to_the_end(replicas: Replicas, campaign_id: str, updates: list[list[campaign_pb2.Campaign]],
                              watchers: list[asyncio.Task], expected: list[int]) -> None:
    await asyncio.wait_for(asyncio.gather(*watchers), 120)
    stored = [(await c.GetCampaign(cs.GetCampaignRequest(id=campaign_id))).campaign for c in replicas.campaigns]
    for seen in updates:
        assert _statuses(seen) == expected, [(u.status, u.stats.progress) for u in seen]
        final = seen[-1]  # the terminal state last, with the final stats
        assert (final.stats.progress, final.stats.recipients_total, final.stats.stats_messages_sent,
                final.stats.stats_users_sent) == (1.0, AUDIENCE, AUDIENCE, AUDIENCE)
        assert final.stats == stored[0].stats == stored[1].stats
        # Progress while sending, not only the start and the end.
        assert [u for u in seen if u.status == IN_PROGRESS and 0 < u.stats.progress < 1], [
            (u.status, u.stats.progress) for u in seen]
    assert replicas.start_deliveries() == 1
    assert await eventually(lambda: replicas.stored_events(campaign_id), lambda seen: len(seen) == 2,
                            what="campaign events") == ["campaign.started", "campaign.completed"]


async def test_a_schedule_fires_once_and_watchers_on_both_replicas_see_it_to_the_end(replicas, caplog):
    caplog.set_level(logging.INFO, logger="herald.campaign.scheduler")
    a, b = replicas.campaigns
    await _create(a, "scheduled")
    updates: list[list[campaign_pb2.Campaign]] = [[], []]
    watchers = [asyncio.create_task(_watch(replica, "scheduled", seen))
                for replica, seen in zip(replicas.campaigns, updates)]
    await eventually(lambda: all(updates), what="both watchers' first update")
    due = timestamp_pb2.Timestamp()
    due.FromDatetime(replicas.clock.now() + dt.timedelta(seconds=60))
    await a.StartCampaign(cs.StartCampaignRequest(id="scheduled", scheduled_for=due))
    await eventually(lambda: [seen[-1].status for seen in updates], lambda now: now == [SCHEDULED] * 2,
                     what="both watchers seeing it scheduled")

    replicas.clock.advance(61)  # due on both replicas' schedulers at once
    await _watched_to_the_end(replicas, "scheduled", updates, watchers, [DRAFT, SCHEDULED, IN_PROGRESS, COMPLETED])
    fired = [r for r in caplog.records if r.getMessage() == "scheduled campaign starts"
             and getattr(r, "campaign_id", "") == "scheduled"]
    assert len(fired) == 1


async def test_a_watcher_on_replica_b_follows_a_campaign_started_through_replica_a(replicas):
    a, b = replicas.campaigns
    await _create(a, "now")
    updates: list[list[campaign_pb2.Campaign]] = [[], []]
    watchers = [asyncio.create_task(_watch(replica, "now", seen)) for replica, seen in zip((b, a), updates)]
    await eventually(lambda: all(updates), what="both watchers' first update")
    await a.StartCampaign(cs.StartCampaignRequest(id="now"))
    await _watched_to_the_end(replicas, "now", updates, watchers, [DRAFT, IN_PROGRESS, COMPLETED])
    assert replicas.delivery_calls[1][START_DELIVERY] == 0  # B relays, A started it


async def test_a_watcher_on_replica_b_sees_a_draft_updated_then_deleted_through_replica_a(replicas):
    a, b = replicas.campaigns
    await _create(a, "draft")
    seen: list[campaign_pb2.Campaign] = []
    watcher = asyncio.create_task(_watch(b, "draft", seen))
    await eventually(lambda: seen, what="the watcher's first update")
    replicas.clock.advance(1)  # a new updated_at
    await a.UpdateCampaign(cs.UpdateCampaignRequest(
        id="draft", name="renamed", sender_id="boss", user_ids=_audience(),
        message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
        channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))
    # B learns of A's change by looking at the stored campaign (its status and updated_at).
    await eventually(lambda: [u.name for u in seen], lambda names: names[-1] == "renamed",
                     what="the watcher on B seeing the new name")
    await a.DeleteCampaign(cs.DeleteCampaignRequest(id="draft"))
    with pytest.raises(grpc.aio.AioRpcError) as deleted:
        await asyncio.wait_for(watcher, 30)
    assert deleted.value.code() == grpc.StatusCode.NOT_FOUND, deleted.value.details()
    assert [u.status for u in seen] == [DRAFT] * len(seen)
