"""Campaign control through the three real services (DESIGN §10.2): what PauseCampaign,
ResumeCampaign and UpdateCampaign of a paused campaign accept and refuse, stop and stop_at on a
paused campaign, DeleteCampaign refusing one, max_send_rate kept and checked, and the events a
webhook receiver gets: campaign.paused and campaign.resumed once per pause, each with an id of
its own."""

from __future__ import annotations

import datetime as dt
import json

import grpc
import pytest
from google.protobuf import timestamp_pb2

from harness import error_reason, eventually, serve_system, violations
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2

from delivery.helpers import Stubs, upsert_users
from delivery.receiver import receiving

IN_PROGRESS, PAUSED = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS, campaign_pb2.CAMPAIGN_STATUS_PAUSED
STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED
USERS = [f"u{i:04d}" for i in range(3000)]
HOOK = "/hook"


def _fields(**overrides) -> dict:
    fields = dict(sender_id="sender", user_ids=USERS, create_channels=True,
                  channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
                  message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.id }}"), max_send_rate=200)
    return {**fields, **overrides}


async def _refused(call, code: grpc.StatusCode, reason: str = "", field: str = "") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, error
    if reason:
        assert error_reason(error)[1] == reason, error
    if field:
        assert field in violations(error), error
    return error


@pytest.fixture
async def control(new_db_url, tmp_path):
    async with receiving() as receiver, serve_system(new_db_url, tmp_path, webhook_url=f"{receiver.url}{HOOK}") as system:
        await upsert_users(Stubs(system.channel("segment"), system.channel("delivery")).directory, ["sender", *USERS])
        yield campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign")), receiver


async def test_pause_resume_update_and_stop_a_campaign(control):
    campaigns, receiver = control
    created = await campaigns.CreateCampaign(cs.CreateCampaignRequest(id="ctl", **_fields()))
    assert created.campaign.max_send_rate == 200
    await _refused(campaigns.PauseCampaign(cs.PauseCampaignRequest(id="ctl")), grpc.StatusCode.FAILED_PRECONDITION,
                   "CAMPAIGN_NOT_PAUSABLE")
    await _refused(campaigns.ResumeCampaign(cs.ResumeCampaignRequest(id="ctl")), grpc.StatusCode.FAILED_PRECONDITION,
                   "CAMPAIGN_NOT_PAUSED")
    await _refused(campaigns.PauseCampaign(cs.PauseCampaignRequest(id="nope")), grpc.StatusCode.NOT_FOUND,
                   "CAMPAIGN_NOT_FOUND")
    await _refused(campaigns.PauseCampaign(cs.PauseCampaignRequest()), grpc.StatusCode.INVALID_ARGUMENT, field="id")

    await campaigns.StartCampaign(cs.StartCampaignRequest(id="ctl"))
    await eventually(lambda: campaigns.GetCampaign(cs.GetCampaignRequest(id="ctl")),
                     lambda r: r.campaign.stats.stats_messages_sent > 0, what="sending")
    paused = (await campaigns.PauseCampaign(cs.PauseCampaignRequest(id="ctl"))).campaign
    assert paused.status == PAUSED and paused.stats.send_rate == 0 and not paused.stats.HasField("eta")
    again = (await campaigns.PauseCampaign(cs.PauseCampaignRequest(id="ctl"))).campaign
    assert again.status == PAUSED  # as it is

    # Paused: only name, description and message_template change; anything else is refused.
    error = await _refused(campaigns.UpdateCampaign(cs.UpdateCampaignRequest(id="ctl", **_fields(max_send_rate=50))),
                           grpc.StatusCode.FAILED_PRECONDITION, "CAMPAIGN_NOT_EDITABLE")
    assert "max_send_rate" in (error.details() or "")
    await _refused(campaigns.UpdateCampaign(cs.UpdateCampaignRequest(id="ctl", **_fields(user_ids=USERS[:10]))),
                   grpc.StatusCode.FAILED_PRECONDITION, "CAMPAIGN_NOT_EDITABLE")
    await _refused(campaigns.UpdateCampaign(cs.UpdateCampaignRequest(id="ctl", **_fields(max_send_rate=float("nan")))),
                   grpc.StatusCode.INVALID_ARGUMENT, field="max_send_rate")
    updated = (await campaigns.UpdateCampaign(cs.UpdateCampaignRequest(
        id="ctl", name="renamed", description="fixed", **_fields(
            message_template=common_pb2.MessageTemplate(text="Hello {{ receiver.id }}"))))).campaign
    assert (updated.status, updated.name, updated.message_template.text) == (PAUSED, "renamed", "Hello {{ receiver.id }}")
    await _refused(campaigns.DeleteCampaign(cs.DeleteCampaignRequest(id="ctl")), grpc.StatusCode.FAILED_PRECONDITION,
                   "CAMPAIGN_NOT_DELETABLE")

    resumed = (await campaigns.ResumeCampaign(cs.ResumeCampaignRequest(id="ctl"))).campaign
    assert resumed.status == IN_PROGRESS
    assert (await campaigns.ResumeCampaign(cs.ResumeCampaignRequest(id="ctl"))).campaign.status == IN_PROGRESS
    await campaigns.PauseCampaign(cs.PauseCampaignRequest(id="ctl"))
    stopped = (await campaigns.StopCampaign(cs.StopCampaignRequest(id="ctl"))).campaign
    assert stopped.status == STOPPED and stopped.stop_reason == campaign_pb2.STOP_REASON_REQUESTED
    assert 0 < stopped.stats.stats_messages_sent < len(USERS)
    await _refused(campaigns.ResumeCampaign(cs.ResumeCampaignRequest(id="ctl")), grpc.StatusCode.FAILED_PRECONDITION,
                   "CAMPAIGN_NOT_PAUSED")

    kinds = ("campaign.started", "campaign.paused", "campaign.resumed", "campaign.stopped")
    expected = ["campaign.started", "campaign.paused", "campaign.resumed", "campaign.paused", "campaign.stopped"]

    def campaign_events() -> list[tuple[str, str, str]]:
        bodies = [(json.loads(r.body), r.headers["x-webhook-id"]) for r in receiver.at(HOOK) if r.status < 300]
        return [(b["type"], b["campaign"]["status"], i) for b, i in bodies if b["type"] in kinds]

    events = await eventually(campaign_events, lambda e: len(e) >= len(expected), what="the campaign's events")
    assert [(kind, status) for kind, status, _ in events] == list(zip(expected, [
        "in_progress", "paused", "in_progress", "paused", "stopped"]))
    assert len({webhook_id for *_, webhook_id in events}) == len(expected)  # each pause its own events


async def test_stop_at_stops_a_paused_campaign(control):
    campaigns, _ = control
    await campaigns.CreateCampaign(cs.CreateCampaignRequest(id="timed", **_fields(max_send_rate=100)))
    stop_at = timestamp_pb2.Timestamp()
    stop_at.FromDatetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3))
    await campaigns.StartCampaign(cs.StartCampaignRequest(id="timed", stop_at=stop_at))
    await eventually(lambda: campaigns.GetCampaign(cs.GetCampaignRequest(id="timed")),
                     lambda r: r.campaign.stats.stats_messages_sent > 0, what="sending")
    assert (await campaigns.PauseCampaign(cs.PauseCampaignRequest(id="timed"))).campaign.status == PAUSED
    done = await eventually(lambda: campaigns.GetCampaign(cs.GetCampaignRequest(id="timed")),
                            lambda r: r.campaign.status == STOPPED, timeout_s=60, interval_s=0.2,
                            what="stopped at stop_at while paused")
    assert done.campaign.stop_reason == campaign_pb2.STOP_REASON_STOP_AT
