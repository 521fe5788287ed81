"""The durable scheduler, driven by the injectable clock: scheduled starts across restarts,
times that passed while the service was down, stop_at, and two instances on one database."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import grpc
import pytest

from herald.campaign.v1 import campaign_pb2
from herald.segment.v1 import segment_service_pb2 as ss
from services.campaign_svc.app import build
from services.kit.clock import SystemClock
from services.kit.server import start_server

from harness import eventually
from campaign.test_lifecycle import COMPLETED, DRAFT, IN_PROGRESS, SCHEDULED, STOPPED, later
from campaign.test_watch import collect


async def test_scheduled_campaign_fires_after_a_restart_between_start_and_its_time(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    await env.restart()
    await asyncio.sleep(0.1)  # several ticks: not due yet
    assert (await env.get(campaign.id)).status == SCHEDULED
    env.clock.advance(61)
    running = await env.wait_status(campaign.id, IN_PROGRESS)
    await eventually(lambda: env.delivery.event_types(campaign.id), lambda seen: seen == ["campaign.started"])
    assert env.delivery.start_calls == [campaign.id] and running.stats.recipients_total == 2


async def test_time_that_passed_while_down_fires_as_it_starts(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    await env.stop()
    env.clock.advance(3600)
    await env.start()
    await env.wait_status(campaign.id, IN_PROGRESS)
    assert env.delivery.start_calls == [campaign.id]


async def test_stop_at_stops_a_running_campaign(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, stop_at=later(env, 30))
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.progress(campaign.id, progress=0.5, stats_users_sent=1)
    await asyncio.sleep(0.1)
    assert (await env.get(campaign.id)).status == IN_PROGRESS
    env.clock.advance(31)
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert stopped.stop_reason == campaign_pb2.STOP_REASON_STOP_AT
    assert stopped.stats.stats_users_sent == 1
    assert [r.reason for r in env.delivery.stop_calls] == [campaign_pb2.STOP_REASON_STOP_AT]
    await eventually(lambda: env.delivery.event_types(campaign.id), lambda seen: seen == ["campaign.started", "campaign.stopped"])


async def test_scheduled_start_then_stop_at_across_the_clock(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60), stop_at=later(env, 120))
    env.clock.advance(61)
    await env.wait_status(campaign.id, IN_PROGRESS)
    env.clock.advance(60)
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert stopped.stop_reason == campaign_pb2.STOP_REASON_STOP_AT


async def test_whole_window_passed_while_down_stops_without_sending(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60), stop_at=later(env, 120))
    await env.stop()
    env.clock.advance(3600)
    await env.start()
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert stopped.stop_reason == campaign_pb2.STOP_REASON_STOP_AT
    await eventually(lambda: env.delivery.event_types(campaign.id), lambda seen: seen == ["campaign.stopped"])
    assert env.delivery.start_calls == []


async def test_two_instances_never_start_the_same_campaign_twice(env):
    second = await start_server(env.build_app(), env.settings, "127.0.0.1:0")
    try:
        ids = []
        for i in range(6):
            campaign = await env.create(id=f"twin{i}")
            await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
            ids.append(campaign.id)
        env.clock.advance(61)
        for campaign_id in ids:
            await env.wait_status(campaign_id, IN_PROGRESS)
        await eventually(lambda: [env.delivery.event_types(c) for c in ids],
                         lambda seen: seen == [["campaign.started"]] * len(ids))
        await asyncio.sleep(0.5)  # room for a second start, were there one
        assert sorted(env.delivery.start_calls) == ids
        for campaign_id in ids:
            env.delivery.complete(campaign_id)
        for campaign_id in ids:
            await env.wait_status(campaign_id, COMPLETED)
        await eventually(lambda: [env.delivery.event_types(c) for c in ids],
                         lambda seen: seen == [["campaign.started", "campaign.completed"]] * len(ids))
    finally:
        await second.stop(0.2)


async def test_real_clock_fires_about_a_second_after_the_time(env):
    await env.stop()
    await env.start(build(env.settings, segment_channel=env.upstream_channel(env.segment_port),
                          delivery_channel=env.upstream_channel(env.delivery_port), clock=SystemClock()))
    campaign = await env.create()
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    from campaign.conftest import ts
    await env.start_campaign(campaign.id, scheduled_for=ts(due))
    await env.wait_status(campaign.id, IN_PROGRESS, timeout=15)
    lateness = time.time() - due.timestamp()
    assert -0.05 < lateness < 10  # generous: aims at well under a second


async def test_a_scheduled_start_the_delivery_refuses_stops_with_capacity(env):
    import grpc
    env.delivery.refuse = grpc.StatusCode.RESOURCE_EXHAUSTED
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    env.clock.advance(61)
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert stopped.stop_reason == campaign_pb2.STOP_REASON_CAPACITY
    assert "capacity" in stopped.stop_message
    await eventually(lambda: env.delivery.event_types(campaign.id), lambda seen: seen == ["campaign.stopped"])


# --- the audience is counted before a campaign is in progress (DESIGN §10.2) -----------------------

@pytest.mark.parametrize("scheduled", [False, True], ids=["now", "scheduled"])
async def test_in_progress_is_never_shown_without_the_audience_counted(env, scheduled):
    # StartDelivery is held, so the window between in_progress and the delivery's answer stays open.
    campaign = await env.create(user_ids=["u1", "u2", "u3", "sender"])  # the sender is left out: 3
    updates: list = []
    watcher = asyncio.create_task(collect(env, campaign.id, updates))
    await eventually(lambda: updates)
    env.delivery.start_gate.clear()
    starting = None
    if scheduled:
        await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
        env.clock.advance(61)
    else:
        starting = asyncio.create_task(env.start_campaign(campaign.id))
    await eventually(lambda: env.delivery.start_calls == [campaign.id])
    held = await env.get(campaign.id)
    assert (held.status, held.stats.recipients_total) == (IN_PROGRESS, 3)
    await eventually(lambda: updates[-1][1].status == IN_PROGRESS)  # the watcher saw it too
    env.delivery.start_gate.set()
    if starting is not None:
        assert (await asyncio.wait_for(starting, 10)).stats.recipients_total == 3
    snapshot = await eventually(lambda: env.delivery.snapshots.get(campaign.id))
    assert snapshot.stats.recipients_total == 3  # the delivery starts with the count

    # A delivery reporting no total (an older delivery service) does not undo the count.
    await eventually(lambda: env.delivery.watch_calls[campaign.id] == 1)
    env.delivery.progress(campaign.id, progress=0.5, recipients_total=0)
    half = await eventually(lambda: _at_progress(env, campaign.id, 0.5))
    assert half.stats.recipients_total == 3
    await eventually(lambda: updates[-1][1].stats.progress == 0.5)
    env.delivery.complete(campaign.id, recipients_total=3)
    await asyncio.wait_for(watcher, 10)
    seen = [(c.status, c.stats.progress, c.stats.recipients_total) for _, c in updates]
    assert [s for s in seen if s[0] == IN_PROGRESS and s[2] != 3] == [], seen
    assert seen[-1] == (COMPLETED, 1.0, 3), seen


async def _at_progress(env, campaign_id: str, progress: float):
    campaign = await env.get(campaign_id)
    return campaign if campaign.stats.progress == progress else None


async def test_start_now_without_the_segment_service_is_unavailable_and_changes_nothing(env):
    campaign = await env.create()
    await env.stop()
    await env.start(env.build_app(segment_port=1))  # nothing listens on port 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.start_campaign(campaign.id)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert "segment service" in caught.value.details()
    await env.restart()
    unchanged = await env.get(campaign.id)
    assert (unchanged.status, unchanged.stats.recipients_total) == (DRAFT, 0)
    assert env.delivery.start_calls == []


async def test_a_due_campaign_waits_for_the_segment_service_to_count_it(env, caplog):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    await env.stop()
    await env.start(env.build_app(segment_port=1))
    caplog.set_level(logging.WARNING, logger="herald.campaign.scheduler")
    env.clock.advance(61)
    await eventually(lambda: [r for r in caplog.records if r.getMessage().startswith("scheduled campaign waits")])
    assert env.delivery.start_calls == []
    await env.restart()  # the segment service is reachable again: the next tick counts and starts it
    running = await env.wait_status(campaign.id, IN_PROGRESS)
    assert running.stats.recipients_total == 2
    await eventually(lambda: env.delivery.start_calls == [campaign.id])


async def test_a_due_campaign_whose_segment_is_gone_stops_with_an_error(env):
    segment_id = await env.segment(targets=["u1", "u2"])
    campaign = await env.create(segment_ids=[segment_id])
    await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    await env.segments.DeleteSegment(ss.DeleteSegmentRequest(id=segment_id))
    env.clock.advance(61)
    stopped = await env.wait_status(campaign.id, STOPPED)
    assert stopped.stop_reason == campaign_pb2.STOP_REASON_ERROR
    assert "audience cannot be counted" in stopped.stop_message and segment_id in stopped.stop_message
    assert env.delivery.start_calls == []
