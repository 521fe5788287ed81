"""WatchCampaign: one upstream watch for many watchers, the cadence, waiting on drafts, the
terminal state last; progress persisted and followed again after a restart."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from herald.campaign.v1 import campaign_service_pb2 as cs

from harness import error_reason, eventually
from campaign.test_lifecycle import COMPLETED, DRAFT, IN_PROGRESS, SCHEDULED, STOPPED, later


async def collect(env, campaign_id: str, into: list | None = None) -> list:
    updates = [] if into is None else into
    async for response in env.client.WatchCampaign(cs.WatchCampaignRequest(id=campaign_id)):
        updates.append((time.monotonic(), response.campaign))
    return updates


async def test_100_watchers_share_one_upstream_watch_and_see_the_same_end(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    watchers = [asyncio.create_task(collect(env, campaign.id)) for _ in range(100)]
    await eventually(lambda: env.app.feeds.watcher_count(campaign.id), lambda seen: seen == 100)
    for step in range(1, 5):
        env.delivery.progress(campaign.id, progress=step / 5, stats_users_sent=step)
        await asyncio.sleep(0.05)
    env.delivery.complete(campaign.id, stats_users_read=1)
    results = await asyncio.wait_for(asyncio.gather(*watchers), 20)
    finals = {r[-1][1].SerializeToString(deterministic=True) for r in results}
    assert len(finals) == 1
    final = results[0][-1][1]
    assert (final.status, final.stats.progress, final.stats.stats_users_read) == (COMPLETED, 1.0, 1)
    assert all(u[1].status != COMPLETED for r in results for u in r[:-1])  # terminal state last, once
    assert env.delivery.watch_calls[campaign.id] == 1
    assert env.app.sending.upstream_watches == 1


async def test_watching_a_draft_waits_then_follows_to_the_end(env):
    campaign = await env.create()
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    assert updates[0][1].status == DRAFT
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    await eventually(lambda: updates[-1][1].status, lambda seen: seen == SCHEDULED)
    env.clock.advance(61)
    await eventually(lambda: updates[-1][1].status, lambda seen: seen == IN_PROGRESS)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.complete(campaign.id)
    await asyncio.wait_for(watcher, 10)
    assert [u[1].status for u in updates][-1] == COMPLETED
    assert env.delivery.watch_calls[campaign.id] == 1


async def test_cadence_at_most_four_a_second_and_a_heartbeat_while_sending(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    started = time.monotonic()
    for step in range(60):  # 60 changes in about 1.2 s
        env.delivery.progress(campaign.id, stats_messages_sent=step + 1, progress=(step + 1) / 100)
        await asyncio.sleep(0.02)
    await asyncio.sleep(2.6)  # nothing changes: heartbeats only
    env.delivery.complete(campaign.id)
    await asyncio.wait_for(watcher, 10)
    observed_s = time.monotonic() - started  # longer than the server's span, never shorter
    # Coalesced: at most four a second on the server's clock, so on this longer one too (not 60).
    assert len(updates) - 1 <= 4 * observed_s + 2, [t - started for t, _ in updates]
    # While nothing changed, the same state came again (a heartbeat), however slow the machine.
    repeats = [b for a, b in zip(updates, updates[1:]) if a[1] == b[1]]
    assert repeats, [c.stats.stats_messages_sent for _, c in updates]
    assert updates[-1][1].status == COMPLETED and updates[-1][1].stats.stats_messages_sent == 2


async def test_progress_is_persisted_and_followed_again_after_a_restart(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.progress(campaign.id, progress=0.5, stats_users_sent=1, recipients_skipped=0)
    await eventually(lambda: _progress(env, campaign.id, 0.5))
    await env.restart()
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 2)
    assert (await env.get(campaign.id)).stats.progress == 0.5
    env.delivery.complete(campaign.id, recipients_failed=1)
    done = await env.wait_status(campaign.id, COMPLETED)
    assert done.stats.recipients_failed == 1
    assert env.delivery.start_calls == [campaign.id]


async def _progress(env, campaign_id, value):
    return (await env.get(campaign_id)).stats.progress == value


async def test_delivery_watch_reconnects_after_the_stream_breaks(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    env.delivery.break_watches()
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 2)
    env.delivery.complete(campaign.id)
    await asyncio.wait_for(watcher, 10)
    assert updates[-1][1].status == COMPLETED
    assert (await env.get(campaign.id)).status == COMPLETED


async def test_a_delivery_that_stops_by_itself_stops_the_campaign(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    delivery = env.delivery.deliveries[campaign.id]
    delivery.status, delivery.stop_reason, delivery.stop_message = STOPPED, 4, "segment service gone"
    env.delivery._touch(campaign.id)
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert (stopped.stop_reason, stopped.stop_message) == (4, "segment service gone")
    await eventually(lambda: env.delivery.event_types(campaign.id), lambda seen: seen == ["campaign.started", "campaign.stopped"])


async def test_watch_a_finished_campaign_gives_its_state_and_ends(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await env.stop_campaign(campaign.id)
    updates = await asyncio.wait_for(collect(env, campaign.id), 5)
    assert [u[1].status for u in updates] == [STOPPED]


async def test_watch_unknown_or_deleted_campaign_is_not_found(env):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(env, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == ("campaign.herald", "CAMPAIGN_NOT_FOUND")
    campaign = await env.create()
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    await env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=campaign.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(watcher, 5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == ("campaign.herald", "CAMPAIGN_DELETED")


async def test_shutdown_ends_watch_streams_with_unavailable(env):
    campaign = await env.create()
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    await env.stop()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(watcher, 5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(caught.value) == ("campaign.herald", "SERVER_SHUTTING_DOWN")
