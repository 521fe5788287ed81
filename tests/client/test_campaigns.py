"""Campaigns through `HeraldClient`: created from a dict or keywords, read, replaced, deleted,
queried and iterated page after page; started now and followed with `watch_campaign` to the
end; scheduled with datetimes and stopped; test messages sent once across a restart of
delivery_svc (the retries carry one request_id); the raw stubs and `HeraldClient.idempotent`
still there as the README documents them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from harness import DEADLINE_S, _start, eventually
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs
from herald.common.v1 import common_pb2
from services.client import HeraldClient
from services.client.errors import FailedPrecondition, InvalidArgument, NotFound

from client.conftest import campaign_fields, client_of, users

S = campaign_pb2


async def test_create_from_a_dict_or_keywords_get_update_and_delete(herald):
    await users(herald, "boss", "ann", "bob")
    from_dict = await herald.create_campaign({"id": "welcome", "name": "Welcome", **campaign_fields(
        user_ids=["ann"], sender_mode="exclude")})
    assert (from_dict.id, from_dict.status, from_dict.sender_mode) == ("welcome", S.CAMPAIGN_STATUS_DRAFT,
                                                                        common_pb2.SENDER_MODE_EXCLUDE)
    assert from_dict.message_template.text.startswith("Hi {{ receiver.name }}")
    from_keywords = await herald.create_campaign(name="Made of keywords", sender_id="boss", user_ids=["bob"],
                                                 message_template=common_pb2.MessageTemplate(text="Hey"),
                                                 channel_template={"type": "messaging"}, create_channels=True)
    assert from_keywords.id and from_keywords.name == "Made of keywords"  # a generated id
    both = await herald.create_campaign(campaign_fields(user_ids=["ann"]), id="both", name="keywords win")
    assert (both.id, both.name) == ("both", "keywords win")

    got = await herald.get_campaign("welcome")
    assert got.sender.id == "boss" and [u.id for u in got.users] == ["ann"] and got.created_at.seconds > 0

    updated = await herald.update_campaign("welcome", campaign_fields(
        name="Welcome again", user_ids=["ann", "bob"], sender_visibility="hidden"))
    assert (updated.name, list(updated.user_ids)) == ("Welcome again", ["ann", "bob"])
    assert updated.sender_visibility == common_pb2.SENDER_VISIBILITY_HIDDEN
    assert updated.sender_mode == common_pb2.SENDER_MODE_UNSPECIFIED  # replaced: every field passed or reset

    await herald.delete_campaign("both")
    with pytest.raises(NotFound):
        await herald.get_campaign("both")


async def test_query_and_iterate_with_a_filter_across_pages(herald):
    await users(herald, "boss", "ann")
    for i in range(7):
        await herald.create_campaign(campaign_fields(id=f"spring-{i}", name=f"Spring {i}", user_ids=["ann"]))
    await herald.create_campaign(campaign_fields(id="autumn", name="Autumn", user_ids=["ann"]))
    await herald.start_campaign("spring-6", scheduled_for=datetime.now(timezone.utc) + timedelta(days=1))

    drafts = await herald.query_campaigns({"status": "draft", "name": {"$gte": "Spring"}}, sort=["id"], limit=4,
                                          user_limit=1)
    assert [c.id for c in drafts.campaigns] == ["spring-0", "spring-1", "spring-2", "spring-3"] and drafts.next
    assert [u.id for u in drafts.campaigns[0].users] == ["ann"]
    ids = [c.id async for c in herald.iter_campaigns(filter={"status": "draft", "id": {"$ne": "autumn"}},
                                                     sort=["-id"], page_size=2)]
    assert ids == [f"spring-{i}" for i in (5, 4, 3, 2, 1, 0)]
    assert [c.id async for c in herald.iter_campaigns({"status": {"$in": ["scheduled"]}})] == ["spring-6"]
    assert len([c async for c in herald.iter_campaigns(page_size=3)]) == 8


async def test_start_now_and_watch_to_the_end(herald):
    await users(herald, "boss", "ann", "bob")
    await herald.create_campaign(campaign_fields(id="hello", user_ids=["ann", "bob", "ghost"]))
    started = await herald.start_campaign("hello")
    assert started.status in (S.CAMPAIGN_STATUS_IN_PROGRESS, S.CAMPAIGN_STATUS_COMPLETED)

    async def follow() -> list[campaign_pb2.Campaign]:
        return [c async for c in herald.watch_campaign("hello")]

    seen = await asyncio.wait_for(follow(), DEADLINE_S)
    last = seen[-1]
    assert last.status == S.CAMPAIGN_STATUS_COMPLETED and last.stats.progress == 1.0
    assert (last.stats.stats_messages_sent, last.stats.recipients_skipped, last.stats.recipients_total) == (2, 1, 3)
    assert all(c.status != S.CAMPAIGN_STATUS_COMPLETED for c in seen[:-1])  # the iterator ends at the end
    assert [c.stats.progress for c in seen] == sorted(c.stats.progress for c in seen)
    # A campaign that already ended: its final state once, then the iterator ends.
    assert [c.status async for c in herald.watch_campaign("hello")] == [S.CAMPAIGN_STATUS_COMPLETED]


async def test_start_at_a_datetime_with_stop_at_then_stop(herald):
    await users(herald, "boss", "ann")
    await herald.create_campaign(campaign_fields(id="later", user_ids=["ann"]))
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)
    scheduled = await herald.start_campaign("later", scheduled_for=when, stop_at=when + timedelta(hours=1))
    assert scheduled.status == S.CAMPAIGN_STATUS_SCHEDULED
    assert scheduled.scheduled_for.ToDatetime(timezone.utc) == when
    assert scheduled.stop_at.ToDatetime(timezone.utc) == when + timedelta(hours=1)
    # A naive datetime is UTC; an RFC 3339 string works too (rescheduling a scheduled campaign).
    naive = (when + timedelta(days=1)).replace(tzinfo=None)
    moved = await herald.start_campaign("later", scheduled_for=naive, stop_at="2099-01-01T00:00:00Z")
    assert moved.scheduled_for.ToDatetime() == naive and moved.stop_at.ToJsonString() == "2099-01-01T00:00:00Z"

    stopped = await herald.stop_campaign("later")
    assert (stopped.status, stopped.stop_reason) == (S.CAMPAIGN_STATUS_STOPPED, S.STOP_REASON_REQUESTED)
    assert [c.status async for c in herald.watch_campaign("later")] == [S.CAMPAIGN_STATUS_STOPPED]


async def test_pause_change_the_text_and_resume_with_a_rate_of_its_own(herald):
    ids = [f"u{i:03d}" for i in range(300)]
    await users(herald, "boss", *ids)
    created = await herald.create_campaign(campaign_fields(id="slow", user_ids=ids, max_send_rate=50))
    assert created.max_send_rate == 50
    await herald.start_campaign("slow")
    paused = await herald.pause_campaign("slow")
    assert paused.status == S.CAMPAIGN_STATUS_PAUSED
    assert (await herald.pause_campaign("slow")).status == S.CAMPAIGN_STATUS_PAUSED  # as it is
    fields = campaign_fields(user_ids=ids, max_send_rate=50)
    fields["message_template"] = {"text": "Fixed {{ receiver.name }}"}
    assert (await herald.update_campaign("slow", fields)).message_template.text == "Fixed {{ receiver.name }}"
    with pytest.raises(FailedPrecondition) as refused:  # paused: only name, description and text
        await herald.update_campaign("slow", fields, max_send_rate=10)
    assert refused.value.reason == "CAMPAIGN_NOT_EDITABLE"
    assert (await herald.resume_campaign("slow")).status == S.CAMPAIGN_STATUS_IN_PROGRESS
    stopped = await herald.stop_campaign("slow")
    assert stopped.status == S.CAMPAIGN_STATUS_STOPPED
    with pytest.raises(FailedPrecondition) as not_paused:
        await herald.resume_campaign("slow")
    assert not_paused.value.reason == "CAMPAIGN_NOT_PAUSED"


async def test_preview_a_recipient_of_a_draft(herald):
    await users(herald, "boss", "ann")
    await herald.create_campaign(campaign_fields(id="peek", user_ids=["ann", "ghost"]))
    preview = await herald.preview_campaign("peek", receiver_id="ann")
    assert (preview.status, preview.cid, preview.channel_exists, list(preview.member_ids)) == (
        S.PREVIEW_STATUS_SENT, "messaging:ann-boss", False, ["ann", "boss"])
    assert (preview.message.text, preview.message.user_id) == ("Hi Ann from Boss", "boss")
    ghost = await herald.preview_campaign("peek", receiver_id="ghost")
    assert (ghost.status, ghost.reason) == (S.PREVIEW_STATUS_SKIPPED, "user_not_found")
    with pytest.raises(InvalidArgument) as refused:
        await herald.preview_campaign("peek", cid="messaging:ann-boss")  # a user audience: receiver_id
    assert [v.field for v in refused.value.field_violations] == ["cid"]
    assert (await herald.get_campaign("peek")).status == S.CAMPAIGN_STATUS_DRAFT  # nothing moved


async def test_a_test_send_retried_while_delivery_svc_restarts_sends_once(system_and_client):
    system, _ = system_and_client
    herald = client_of(system, retry_unavailable_s=DEADLINE_S, timeout=DEADLINE_S)
    try:
        await users(herald, "boss", "ann", "bob")
        await herald.create_campaign(campaign_fields(id="try", user_ids=["ann", "bob"]))
        failed: list[tuple[str, grpc.StatusCode]] = []  # each failed attempt's request_id and code
        real = herald.campaigns.SendTestCampaign

        async def recorded(request, **kwargs):
            try:
                return await real(request, **kwargs)
            except grpc.aio.AioRpcError as exc:
                failed.append((request.request_id, exc.code()))
                raise

        herald.campaigns.SendTestCampaign = recorded
        await system.servers["delivery"].stop(0.5)  # campaign_svc answers UNAVAILABLE meanwhile
        sending = asyncio.create_task(herald.send_test_campaign("try", user_ids="ann"))  # one id, not a list
        await eventually(lambda: len(failed), lambda n: n >= 2, what="SendTestCampaign failing while down")
        system.servers["delivery"] = await _start("delivery", system.settings)  # the same port and database
        sent = await asyncio.wait_for(sending, DEADLINE_S)
        assert set(failed) == {(sent.request_id, grpc.StatusCode.UNAVAILABLE)}
        [ann] = sent.recipients
        assert (ann.target_id, ann.status, ann.message.text) == ("ann", S.PREVIEW_STATUS_SENT, "Hi Ann from Boss")

        # Asked again with its request_id (as a retry after a lost answer would be): nothing more is sent.
        again = await herald.send_test_campaign("try", user_ids=["ann"], request_id=sent.request_id)
        assert list(again.recipients) == [ann]
        assert [m.id async for m in herald.iter_messages({"created_by_campaign_id": "try"})] == [ann.message.id]
        assert (await herald.get_usage()).messages_sent == 1
        assert (await herald.get_campaign("try")).status == S.CAMPAIGN_STATUS_DRAFT
    finally:
        await herald.close()


async def test_the_raw_stubs_and_idempotent_still_work(herald):
    await users(herald, "boss", "ann")
    await herald.create_campaign(campaign_fields(id="raw", user_ids=["ann"]))
    reply = await herald.campaigns.GetCampaign(cs.GetCampaignRequest(id="raw"))
    assert reply.campaign.id == "raw"
    again = await HeraldClient.idempotent(herald.campaigns.GetCampaign, cs.GetCampaignRequest(id="raw"), timeout=10)
    assert again.campaign == reply.campaign
    assert (await herald.idempotent(herald.campaigns.QueryCampaigns, cs.QueryCampaignsRequest())).campaigns
