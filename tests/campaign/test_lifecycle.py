"""The status machine: start, stop, complete, delete; events once each; illegal transitions;
users paging; read receipts after completion."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs

from campaign.conftest import ts
from harness import error_reason, eventually

DRAFT = campaign_pb2.CAMPAIGN_STATUS_DRAFT
SCHEDULED = campaign_pb2.CAMPAIGN_STATUS_SCHEDULED
IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED


def later(env, seconds: float):
    return ts(env.clock.now() + dt.timedelta(seconds=seconds))


async def failed_precondition(call, reason: str) -> str:
    """The message of the FAILED_PRECONDITION `call` ends with, once its reason is checked."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
    assert error_reason(caught.value) == ("campaign.herald", reason), caught.value.details()
    return caught.value.details()


async def events_of(env, campaign_id: str, expected: list[str]) -> None:
    await eventually(lambda: env.delivery.event_types(campaign_id), lambda seen: seen == expected)


async def test_start_now_hands_the_snapshot_to_delivery_and_completes_once(env):
    campaign = await env.create(name="launch", skip_push=True)
    started = await env.start_campaign(campaign.id)
    assert started.status == IN_PROGRESS
    snapshot = env.delivery.snapshots[campaign.id]
    assert (snapshot.name, list(snapshot.user_ids), snapshot.skip_push) == ("launch", ["u1", "u2"], True)
    assert snapshot.message_template.text == "Hi {{ receiver.name }}"
    await events_of(env, campaign.id, ["campaign.started"])
    started_event = next(e for e in env.delivery.events.values() if e.type == "campaign.started")
    assert started_event.campaign.status == IN_PROGRESS

    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.progress(campaign.id, progress=0.5, stats_messages_sent=1, stats_users_sent=1)
    half = await eventually(lambda: _stats_at(env, campaign.id, 0.5))
    assert half.stats.stats_messages_sent == 1 and half.stats.recipients_total == 2

    env.delivery.complete(campaign.id, stats_channels_created=2)
    done = await env.wait_status(campaign.id, COMPLETED)
    assert (done.stats.progress, done.stats.stats_users_sent, done.stats.stats_channels_created) == (1.0, 2, 2)
    assert done.stats.HasField("stats_completed_at")
    await events_of(env, campaign.id, ["campaign.started", "campaign.completed"])
    completed_event = env.delivery.events[f"campaign.completed:{_instance(env, campaign.id)}"]
    assert completed_event.campaign.status == COMPLETED and completed_event.campaign.stats.stats_users_sent == 2
    # Sent once: a completed campaign is neither restarted nor stopped.
    message = await failed_precondition(env.client.StartCampaign(cs.StartCampaignRequest(id=campaign.id)),
                                        "CAMPAIGN_NOT_STARTABLE")
    assert "is completed" in message
    message = await failed_precondition(env.client.StopCampaign(cs.StopCampaignRequest(id=campaign.id)),
                                        "CAMPAIGN_COMPLETED")
    assert message == f"campaign {campaign.id} is completed; a completed campaign cannot be stopped"
    assert env.delivery.start_calls == [campaign.id]


async def _stats_at(env, campaign_id, progress):
    campaign = await env.get(campaign_id)
    return campaign if campaign.stats.progress == progress else None


def _instance(env, campaign_id):
    return next(e.id.split(":", 1)[1] for e in env.delivery.events.values() if e.campaign.id == campaign_id)


async def test_stop_in_progress_stops_delivery_with_reason_requested(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    stopped = await env.stop_campaign(campaign.id)
    assert (stopped.status, stopped.stop_reason) == (STOPPED, campaign_pb2.STOP_REASON_REQUESTED)
    assert [r.campaign_id for r in env.delivery.stop_calls] == [campaign.id]
    assert env.delivery.stop_calls[0].reason == campaign_pb2.STOP_REASON_REQUESTED
    await events_of(env, campaign.id, ["campaign.started", "campaign.stopped"])
    assert "stopped already" in await failed_precondition(
        env.client.StopCampaign(cs.StopCampaignRequest(id=campaign.id)), "CAMPAIGN_ALREADY_STOPPED")
    assert "is stopped" in await failed_precondition(
        env.client.StartCampaign(cs.StartCampaignRequest(id=campaign.id)), "CAMPAIGN_NOT_STARTABLE")


async def test_stop_scheduled_gives_only_the_stopped_event(env):
    campaign = await env.create()
    scheduled = await env.start_campaign(campaign.id, scheduled_for=later(env, 3600))
    assert scheduled.status == SCHEDULED
    stopped = await env.stop_campaign(campaign.id)
    assert (stopped.status, stopped.stop_reason) == (STOPPED, campaign_pb2.STOP_REASON_REQUESTED)
    await events_of(env, campaign.id, ["campaign.stopped"])
    assert env.delivery.start_calls == [] and env.delivery.stop_calls == []


async def test_stop_loses_the_race_to_completion(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.deliveries[campaign.id].status = COMPLETED  # completed before the stop lands
    message = await failed_precondition(env.client.StopCampaign(cs.StopCampaignRequest(id=campaign.id)),
                                        "CAMPAIGN_COMPLETED")
    assert "is completed" in message
    assert (await env.get(campaign.id)).status == COMPLETED


async def test_stop_outrun_by_another_stop_and_a_delete_is_not_found(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    gate = env.delivery.stop_gate = asyncio.Event()
    first = asyncio.ensure_future(env.stop_campaign(campaign.id))
    await eventually(lambda: len(env.delivery.stop_calls) == 1)
    env.delivery.stop_gate = None  # the second stop goes through, then the campaign is deleted
    await env.stop_campaign(campaign.id)
    await env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=campaign.id))
    gate.set()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(first, 10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND, caught.value.details()


async def test_illegal_transitions_name_the_current_status(env):
    draft = await env.create()
    message = await failed_precondition(env.client.StopCampaign(cs.StopCampaignRequest(id=draft.id)),
                                        "CAMPAIGN_NOT_STOPPABLE")
    assert message.startswith(f"campaign {draft.id} is draft;")
    running = await env.create()
    await env.start_campaign(running.id)
    message = await failed_precondition(env.client.StartCampaign(cs.StartCampaignRequest(id=running.id)),
                                        "CAMPAIGN_NOT_STARTABLE")
    assert message.startswith(f"campaign {running.id} is in progress;")
    message = await failed_precondition(env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=running.id)),
                                        "CAMPAIGN_NOT_DELETABLE")
    assert message.startswith(f"campaign {running.id} is in progress;")


async def test_unknown_campaign_is_not_found_everywhere(env):
    for call in (env.client.GetCampaign(cs.GetCampaignRequest(id="nope")),
                 env.client.StartCampaign(cs.StartCampaignRequest(id="nope")),
                 env.client.StopCampaign(cs.StopCampaignRequest(id="nope")),
                 env.client.DeleteCampaign(cs.DeleteCampaignRequest(id="nope"))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == ("campaign.herald", "CAMPAIGN_NOT_FOUND")


async def test_schedule_then_reschedule_then_start_now(env):
    campaign = await env.create()
    first = await env.start_campaign(campaign.id, scheduled_for=later(env, 3600), stop_at=later(env, 7200))
    assert first.status == SCHEDULED and first.stop_at.seconds == later(env, 7200).seconds
    second = await env.start_campaign(campaign.id, scheduled_for=later(env, 60))
    assert second.status == SCHEDULED and second.scheduled_for.seconds == later(env, 60).seconds
    assert not second.HasField("stop_at")
    now = await env.start_campaign(campaign.id)
    assert now.status == IN_PROGRESS and env.delivery.start_calls == [campaign.id]


async def test_scheduled_for_in_the_past_starts_now(env):
    campaign = await env.create()
    started = await env.start_campaign(campaign.id, scheduled_for=later(env, -60))
    assert started.status == IN_PROGRESS


@pytest.mark.parametrize("scheduled, stop", [(None, -1), (None, 0), (3600, 1800), (3600, 3600)])
async def test_stop_at_in_the_past_or_before_scheduled_for_is_invalid(env, scheduled, stop):
    from harness import violations
    campaign = await env.create()
    fields = {"stop_at": later(env, stop)}
    if scheduled is not None:
        fields["scheduled_for"] = later(env, scheduled)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.start_campaign(campaign.id, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == ["stop_at"]
    assert (await env.get(campaign.id)).status == DRAFT


@pytest.mark.parametrize("refusal, code, reason", [
    (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.RESOURCE_EXHAUSTED, "CAPACITY_EXHAUSTED"),
    (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, "DELIVERY_REFUSED")])
async def test_delivery_refusal_leaves_the_campaign_as_it_was(env, refusal, code, reason):
    env.delivery.refuse = refusal
    campaign = await env.create()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.start_campaign(campaign.id)
    assert caught.value.code() == code
    assert error_reason(caught.value) == ("campaign.herald", reason)
    assert (await env.get(campaign.id)).status == DRAFT
    env.delivery.refuse = None
    assert (await env.start_campaign(campaign.id)).status == IN_PROGRESS


async def test_delivery_outage_at_start_is_retried_in_the_background(env):
    env.delivery.down = True
    campaign = await env.create()
    started = await env.start_campaign(campaign.id)
    assert started.status == IN_PROGRESS
    assert env.delivery.events == {}
    env.delivery.down = False
    await eventually(lambda: campaign.id in env.delivery.deliveries)
    await events_of(env, campaign.id, ["campaign.started"])
    env.delivery.complete(campaign.id)
    await env.wait_status(campaign.id, COMPLETED)
    await events_of(env, campaign.id, ["campaign.started", "campaign.completed"])


async def test_events_survive_a_delivery_outage_and_are_published_once(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await events_of(env, campaign.id, ["campaign.started"])
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.down = True  # the open watch still runs; PublishEvent fails
    env.delivery.complete(campaign.id)
    await env.wait_status(campaign.id, COMPLETED)
    assert env.delivery.event_types(campaign.id) == ["campaign.started"]
    env.delivery.down = False
    await events_of(env, campaign.id, ["campaign.started", "campaign.completed"])
    await env.restart()  # nothing pending: a restart publishes nothing again
    await env.app.publisher.publish_pending()
    assert len(env.delivery.publish_calls) == 2


async def test_delete_rules(env):
    draft = await env.create()
    await env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=draft.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.get(draft.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == ("campaign.herald", "CAMPAIGN_NOT_FOUND")
    scheduled = await env.create()
    await env.start_campaign(scheduled.id, scheduled_for=later(env, 3600))
    await env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=scheduled.id))
    done = await env.create()
    await env.start_campaign(done.id)
    await eventually(lambda: env.delivery.watch_calls[done.id], lambda seen: seen == 1)
    env.delivery.complete(done.id)
    await env.wait_status(done.id, COMPLETED)
    await env.client.DeleteCampaign(cs.DeleteCampaignRequest(id=done.id))
    # A never-sent campaign's id is free again; a sent one's stays taken, since its delivery
    # (keyed by the campaign id) still exists.
    again = await env.create(id=draft.id)
    assert again.status == DRAFT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.create(id=done.id)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(caught.value) == ("campaign.herald", "CAMPAIGN_ALREADY_EXISTS")


async def test_reads_after_completion_show_in_get_and_query(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id)
    await eventually(lambda: env.delivery.watch_calls[campaign.id], lambda seen: seen == 1)
    env.delivery.complete(campaign.id, stats_users_read=1)
    await env.wait_status(campaign.id, COMPLETED)
    env.delivery.deliveries[campaign.id].stats.stats_users_read = 2  # a read after completion
    assert (await env.get(campaign.id)).stats.stats_users_read == 2
    env.delivery.deliveries[campaign.id].stats.stats_users_read = 3
    queried = (await env.client.QueryCampaigns(cs.QueryCampaignsRequest())).campaigns
    assert [c.stats.stats_users_read for c in queried] == [3]
    env.delivery.down = True  # unreachable: the stored (last seen) value is served
    assert (await env.get(campaign.id)).stats.stats_users_read == 3


async def test_get_campaign_pages_users_both_ways_with_full_user_objects(env):
    ids = [f"p{i:03d}" for i in range(25)]
    await env.users(*ids[:20])  # the last five are unknown to the directory
    campaign = await env.create(user_ids=list(reversed(ids)))
    first = await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id, limit=10))
    assert [u.id for u in first.campaign.users] == ids[:10]
    assert first.campaign.users[0].name == "name of p000" and first.campaign.sender.id == "sender"
    assert first.users.next and not first.users.prev
    second = await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id, limit=10, next=first.users.next))
    assert [u.id for u in second.campaign.users] == ids[10:20]
    third = await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id, limit=10, next=second.users.next))
    assert [u.id for u in third.campaign.users] == ids[20:]
    assert [u.name for u in third.campaign.users] == [""] * 5
    assert not third.users.next and third.users.prev
    back = await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id, limit=10, prev=third.users.prev))
    assert [u.id for u in back.campaign.users] == ids[10:20]
    default = await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id))
    assert len(default.campaign.users) == 25 and len(default.campaign.user_ids) == 25


@pytest.mark.parametrize("fields, field, reason", [(dict(limit=1001), "limit", "INVALID_ARGUMENT"),
                                                   (dict(limit=-1), "limit", "INVALID_ARGUMENT"),
                                                   (dict(next="garbage"), "next", "CURSOR_INVALID")])
async def test_get_campaign_paging_arguments_are_checked(env, fields, field, reason):
    from harness import violations
    campaign = await env.create()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.GetCampaign(cs.GetCampaignRequest(id=campaign.id, **fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [field]
    assert error_reason(caught.value) == ("campaign.herald", reason)


async def test_events_and_stop_replies_carry_the_whole_campaign(env):
    segment = await env.segment(targets=["u1"])
    by_segment = await env.create(segment_ids=[segment])
    by_users = await env.create()
    for campaign in (by_segment, by_users):
        await env.start_campaign(campaign.id, scheduled_for=later(env, 3600))
        stopped = (await env.client.StopCampaign(cs.StopCampaignRequest(id=campaign.id))).campaign
        assert stopped.status == STOPPED and stopped.sender.id == campaign.sender_id
        await events_of(env, campaign.id, ["campaign.stopped"])
    events = {e.campaign.id: e.campaign for e in env.delivery.events.values() if e.type == "campaign.stopped"}
    assert [s.id for s in events[by_segment.id].segments] == [segment]
    assert events[by_segment.id].sender.id == by_segment.sender_id
    assert [u.id for u in events[by_users.id].users] == sorted(by_users.user_ids)
    assert all(u.HasField("created_at") for u in events[by_users.id].users)  # full user objects
