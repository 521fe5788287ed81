"""CampaignService.GetUsage over the three real services: a month's messages as delivery_svc
wrote them, against the monthly capacity — after a campaign, for a month with nothing, with a
capacity that a campaign reaches, for malformed months, and after kill -9 of delivery_svc in the
middle of a campaign (the count equals the messages stored, month by month)."""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from datetime import datetime, timezone

import grpc
import pytest

from harness import client_channel, error_reason, serve_system, violations
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_service_pb2 as dvs, delivery_service_pb2_grpc
from services.kit.db import make_engine
from services.kit.months import month_of
from services.kit.probes import free_port, wait_serving

from delivery.crash import delivery_env, kill_once_handled, spawn
from delivery.helpers import Stubs, all_messages, upsert_users, user_segment

TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)
BAD_MONTHS = ["2026-7", "2026-00", "2026-13", "0000-01", "26-07", "2026/07", "2026-07-01", " 2026-07", "2026-07\n",
              "\uff12\uff10\uff12\uff16-07", "abcd-ef", "2026-0\x00", "x" * 300]


async def _run_campaign(campaigns, campaign_id: str, *, user_ids=(), segment_ids=()) -> campaign_pb2.Campaign:
    """Creates, starts and watches a campaign from `boss` to its end."""
    await campaigns.CreateCampaign(cs.CreateCampaignRequest(
        id=campaign_id, sender_id="boss", user_ids=list(user_ids), segment_ids=list(segment_ids),
        message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
        channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
        create_channels=True))
    await campaigns.StartCampaign(cs.StartCampaignRequest(id=campaign_id))
    return await _watch_to_end(campaigns, campaign_id)


async def _watch_to_end(campaigns, campaign_id: str) -> campaign_pb2.Campaign:
    async for update in campaigns.WatchCampaign(cs.WatchCampaignRequest(id=campaign_id)):
        if update.campaign.status in TERMINAL:
            return update.campaign
    raise AssertionError(f"the watch of {campaign_id} ended before the campaign did")


async def _stored_by_month(stubs: Stubs) -> Counter[str]:
    """The messages stored, counted by the month (UTC) they were written in."""
    messages = await all_messages(stubs, {})
    return Counter(month_of(m.created_at.ToDatetime(timezone.utc)) for m in messages)


async def _usage(campaigns, month: str = "") -> cs.GetUsageResponse:
    return await campaigns.GetUsage(cs.GetUsageRequest(month=month))


async def _current_usage(campaigns) -> cs.GetUsageResponse:
    """GetUsage of the default month, which is the current one (UTC) as the call was answered."""
    asked_in = month_of(datetime.now(timezone.utc))
    usage = await _usage(campaigns)
    assert usage.month in (asked_in, month_of(datetime.now(timezone.utc)))
    return usage


async def test_usage_after_a_campaign_equals_the_messages_sent_and_an_empty_month_is_zero(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        stubs = Stubs(system.channel("segment"), system.channel("delivery"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        await upsert_users(stubs.directory, ["boss", "ann", "bob", "cy"])

        before = await _current_usage(campaigns)
        assert (before.messages_sent, before.capacity) == (0, 0)
        assert not before.HasField("remaining")  # unlimited

        done = await _run_campaign(campaigns, "welcome", user_ids=["ann", "bob", "cy", "ghost"])
        assert (done.status, done.stats.stats_messages_sent, done.stats.recipients_skipped) == (
            campaign_pb2.CAMPAIGN_STATUS_COMPLETED, 3, 1)
        stored = await _stored_by_month(stubs)
        assert sum(stored.values()) == 3
        for month, count in stored.items():  # one month, unless the campaign ran across midnight of the 1st
            usage = await _usage(campaigns, month)
            assert (usage.month, usage.messages_sent, usage.capacity) == (month, count, 0)
            assert not usage.HasField("remaining")
        current = await _current_usage(campaigns)
        assert current.messages_sent == stored[current.month]

        for month in ("1999-12", "0001-01", "9999-12"):
            nothing = await _usage(campaigns, month)
            assert (nothing.month, nothing.messages_sent, nothing.capacity) == (month, 0, 0)


async def test_capacity_and_remaining_with_a_capacity_set(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, monthly_message_capacity=3) as system:
        stubs = Stubs(system.channel("segment"), system.channel("delivery"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        await upsert_users(stubs.directory, ["boss", "ann", "bob", "cy", "dee"])
        fresh = await _usage(campaigns)
        assert (fresh.messages_sent, fresh.capacity, fresh.remaining) == (0, 3, 3)

        first = await _run_campaign(campaigns, "first", user_ids=["ann", "bob"])
        assert first.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED
        month = month_of(datetime.now(timezone.utc))
        stored = await _stored_by_month(stubs)
        if list(stored) != [month]:
            pytest.skip("the campaign ran across the start of a month: the capacity began anew")
        after_first = await _usage(campaigns, month)
        assert (after_first.messages_sent, after_first.capacity, after_first.remaining) == (2, 3, 1)

        # The second campaign reaches the capacity: one message goes out, the campaign stops.
        second = await _run_campaign(campaigns, "second", user_ids=["cy", "dee"])
        assert (second.status, second.stop_reason, second.stats.stats_messages_sent) == (
            campaign_pb2.CAMPAIGN_STATUS_STOPPED, campaign_pb2.STOP_REASON_CAPACITY, 1)
        full = await _usage(campaigns, month)
        assert (full.messages_sent, full.capacity, full.remaining) == (3, 3, 0)
        assert full.HasField("remaining")  # 0 left, which is not "unlimited"
        assert sum((await _stored_by_month(stubs)).values()) == 3


async def test_a_malformed_month_is_invalid_argument_naming_month(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(system.channel("delivery"))
        for month in BAD_MONTHS:
            for call, domain in ((campaigns.GetUsage(cs.GetUsageRequest(month=month)), "campaign.herald"),
                                 (deliveries.GetUsage(dvs.GetUsageRequest(month=month)), "delivery.herald")):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (month, caught.value.details())
                assert violations(caught.value) == ["month"], month
                assert error_reason(caught.value) == (domain, "INVALID_ARGUMENT"), month


async def test_usage_with_the_delivery_service_down_is_unavailable(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, names=("segment", "campaign"),
                            delivery_addr=f"127.0.0.1:{free_port()}") as system:
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _usage(campaigns)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_reason(caught.value) == ("campaign.herald", "DEPENDENCY_UNAVAILABLE")


CRASH_USERS = 2_000
CRASH_ROUNDS = 2


async def test_usage_is_exact_after_delivery_svc_is_killed_mid_campaign(new_db_url, tmp_path):
    """delivery_svc runs as a process killed with SIGKILL at random points of a campaign and
    restarted; once the campaign completes, GetUsage equals the messages stored, month by month.
    The seed is printed; HERALD_CRASH_SEED=<seed> replays a run."""
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    print(f"\nusage crash test seed: {seed} (replay with HERALD_CRASH_SEED={seed})")
    rng = random.Random(seed)
    port = free_port()
    delivery_url = await new_db_url("delivery")
    async with serve_system(new_db_url, tmp_path, names=("segment", "campaign"),
                            delivery_addr=f"127.0.0.1:{port}") as system:
        env = delivery_env(port=port, segment_addr=system.settings.segment_addr, db_url=delivery_url,
                           data_dir=tmp_path, batch_size=rng.choice([50, 100, 200]))
        users = [f"user-{i:05d}" for i in range(CRASH_USERS)]
        async with client_channel(port) as delivery_channel:
            stubs = Stubs(system.channel("segment"), delivery_channel)
            campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
            await upsert_users(stubs.directory, ["boss", *users])
            segment_id = await user_segment(stubs.segments, users)
            observer = make_engine(delivery_url)  # reads the checkpoint to time the kills
            process = await spawn(env)
            try:
                await wait_serving(port, alive=lambda: process.returncode is None)
                await campaigns.CreateCampaign(cs.CreateCampaignRequest(
                    id="crash", sender_id="boss", segment_ids=[segment_id],
                    message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
                    channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
                    create_channels=True))
                await campaigns.StartCampaign(cs.StartCampaignRequest(id="crash"))
                handled = 0
                for round_ in range(CRASH_ROUNDS):
                    if round_:
                        process = await spawn(env)  # resumes the delivery by itself as it starts
                    target = handled + rng.uniform(0.1, 0.5) * (CRASH_USERS - handled)
                    handled, status = await kill_once_handled(process, observer, "crash", target,
                                                              jitter_s=rng.uniform(0, 0.03), what=f"(seed {seed})")
                    print(f"round {round_}: killed with {handled}/{CRASH_USERS} recipients handled")
                    if status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                        break
                process = await spawn(env)  # the last one runs to the end
                await wait_serving(port, alive=lambda: process.returncode is None)
                done = await _watch_to_end(campaigns, "crash")
                assert done.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED, f"{done} (seed {seed})"

                stored = await _stored_by_month(stubs)
                assert sum(stored.values()) == done.stats.stats_messages_sent == CRASH_USERS, f"(seed {seed})"
                for month, count in stored.items():
                    usage = await _usage(campaigns, month)
                    assert (usage.month, usage.messages_sent) == (month, count), f"(seed {seed})"
            finally:
                await observer.dispose()
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await process.wait()
