"""Prometheus metrics of the three real services (DESIGN §10.5), scraped over real HTTP from each
service's `/metrics` after a campaign and parsed with prometheus_client's own parser: the
delivery counters equal the campaign's stats, the RPC counters of both sides hold the calls made,
and webhook attempts and dead letters are counted as they happen."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import METRICS_ON, eventually, serve_system
from delivery.receiver import receiving
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import message_service_pb2 as ms, message_service_pb2_grpc
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
HOOK = "/hook"
# Eve's bio renders past the 5,000 characters a text may have: her recipient fails (text_too_long).
TEXT = "Hi {{ receiver.name }} {{ receiver.custom.bio }}"
USERS = ["ann", "bob", "cat", "dan", "eve"]


class Scrape:
    """One scrape of a service's /metrics, parsed."""

    def __init__(self, text: str) -> None:
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


async def scrape(system, name: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        response = await http.get(system.metrics_url(name), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def start_campaign(system, campaign_id: str, user_ids: Iterable[str]) -> campaign_pb2.Campaign:
    directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
    users = [directory_pb2.User(id="boss", name="Boss")]
    for user_id in USERS:
        user = directory_pb2.User(id=user_id, name=user_id.title())
        user.custom.update({"bio": "x" * 6000 if user_id == "eve" else "!"})
        users.append(user)
    await directory.UpsertUsers(ds.UpsertUsersRequest(users=users))
    await campaigns.CreateCampaign(cs.CreateCampaignRequest(
        id=campaign_id, name="Metrics", sender_id="boss", user_ids=list(user_ids),
        message_template=common_pb2.MessageTemplate(text=TEXT),
        channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True))
    await campaigns.StartCampaign(cs.StartCampaignRequest(id=campaign_id))

    async def campaign() -> campaign_pb2.Campaign:
        return (await campaigns.GetCampaign(cs.GetCampaignRequest(id=campaign_id))).campaign

    return await eventually(campaign, lambda c: c.status == COMPLETED, what="the campaign completed", interval_s=0.1)


async def test_each_service_serves_its_metrics_and_they_match_the_campaign(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, delivery_batch_size=2, **METRICS_ON) as system:
        final = await start_campaign(system, "counted", [*USERS, "ghost"])
        stats = final.stats
        assert (stats.stats_messages_sent, stats.recipients_skipped, stats.recipients_failed) == (4, 1, 1)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await campaigns.GetCampaign(cs.GetCampaignRequest(id="no-such-campaign"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        delivery = await scrape(system, "delivery")
        recipients = "herald_delivery_recipients_total"
        assert delivery.value(recipients, outcome="sent") == stats.stats_messages_sent
        assert delivery.value(recipients, outcome="skipped") == stats.recipients_skipped
        assert delivery.value(recipients, outcome="failed") == stats.recipients_failed
        assert delivery.value("herald_delivery_batch_write_seconds_count") == 3  # 6 recipients, 2 a batch
        assert delivery.value("herald_delivery_batch_write_seconds_sum") > 0

        # Every StartDelivery campaign_svc made, delivery_svc handled, and so on down the chain.
        campaign, segment = await scrape(system, "campaign"), await scrape(system, "segment")
        handled = "grpc_server_handled_total"
        assert campaign.value(handled, grpc_method="StartCampaign", grpc_code="OK", grpc_type="unary") == 1
        assert campaign.value(handled, grpc_method="CreateCampaign", grpc_code="OK") == 1
        assert campaign.value(handled, grpc_method="GetCampaign", grpc_code="NOT_FOUND") == 1
        assert campaign.value("grpc_server_started_total", grpc_method="StartCampaign") == 1
        assert campaign.value("grpc_server_handling_seconds_count", grpc_method="StartCampaign") == 1
        start_deliveries = campaign.value("grpc_client_handled_total", grpc_method="StartDelivery", grpc_code="OK",
                                          grpc_service="herald.delivery.v1.DeliveryService")
        assert start_deliveries == 1
        assert delivery.value(handled, grpc_method="StartDelivery", grpc_code="OK") == start_deliveries
        ensures = delivery.value("grpc_client_handled_total", grpc_method="EnsureChannels", grpc_code="OK")
        assert ensures == 3
        assert segment.value(handled, grpc_method="EnsureChannels", grpc_code="OK",
                             grpc_service="herald.segment.v1.DirectoryService") == ensures
        assert delivery.value("grpc_client_handled_total", grpc_method="StreamRecipients",
                              grpc_type="server_stream", grpc_code="OK") >= 1
        assert segment.value(handled, grpc_method="StreamRecipients", grpc_type="server_stream", grpc_code="OK") >= 1
        assert segment.value(handled, grpc_method="UpsertUsers", grpc_code="OK") == 1
        assert segment.value("grpc_server_handling_seconds_count", grpc_method="EnsureChannels") == ensures
        # campaign_svc's watch of the delivery ends with the campaign: a server stream, counted both sides.
        watch = await eventually(lambda: scrape(system, "campaign"),
                                 lambda s: s.value("grpc_client_handled_total", grpc_method="WatchDelivery") >= 1,
                                 what="campaign_svc's WatchDelivery counted")
        assert watch.value("grpc_client_started_total", grpc_method="WatchDelivery", grpc_type="server_stream") >= 1

        # The push destination has nothing left of the log to pass.
        await eventually(lambda: scrape(system, "delivery"),
                         lambda s: "herald_outbox_backlog_events" in s.names()
                         and s.value("herald_outbox_backlog_events", destination="push") == 0,
                         what="the push backlog at 0")
        assert "herald_scheduler_lateness_seconds_count" in campaign.names()  # none scheduled: 0 observations
        assert campaign.value("herald_scheduler_lateness_seconds_count") == 0


async def test_webhook_attempts_dead_letters_and_backlog_are_counted(new_db_url, tmp_path):
    async with receiving() as receiver:
        receiver.answer(HOOK, 503)  # every POST fails; one attempt each: every event is dead-lettered
        async with serve_system(new_db_url, tmp_path, webhook_url=f"{receiver.url}{HOOK}", webhook_max_attempts=1,
                                **METRICS_ON) as system:
            await start_campaign(system, "hooked", ["ann", "bob"])
            messages = message_service_pb2_grpc.MessageServiceStub(system.channel("delivery"))

            async def dead_letters() -> int:
                return len((await messages.QueryDeadLetters(ms.QueryDeadLettersRequest(limit=100))).dead_letters)

            # channel.created and message.new for each of two recipients, campaign.started and completed.
            await eventually(dead_letters, lambda n: n == 6, what="6 dead letters")
            delivery = await eventually(
                lambda: scrape(system, "delivery"),
                lambda s: s.value("herald_dead_letters_total", destination="webhook") == 6
                and s.value("herald_outbox_backlog_events", destination="webhook") == 0,
                what="6 dead letters counted, the webhook backlog at 0")
            assert delivery.value("herald_dispatch_attempts_total", destination="webhook", outcome="retry") \
                == len(receiver.at(HOOK)) == 6
            assert delivery.value("herald_dispatch_attempts_total", destination="webhook", outcome="delivered") == 0

            receiver.answer(HOOK, 200)
            await messages.ReplayDeadLetters(ms.ReplayDeadLettersRequest(all=True))
            delivery = await eventually(
                lambda: scrape(system, "delivery"),
                lambda s: s.value("herald_dispatch_attempts_total", destination="webhook", outcome="delivered") == 6,
                what="the 6 replays delivered")
            assert delivery.value("herald_dead_letters_total", destination="webhook") == 6  # no new ones
            assert len(receiver.at(HOOK)) == 12
