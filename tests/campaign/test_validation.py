"""Create / Update rules: every rule, each limit exceeded by one, each bad template, the remote
checks against the real segment service (sender, segments, their type), ids."""

from __future__ import annotations

import grpc
import pytest

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs
from herald.common.v1 import common_pb2

from campaign.conftest import request, struct
from harness import error_reason, violations

MT = common_pb2.MessageTemplate
CT = common_pb2.ChannelTemplate


async def refused(env, **fields) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.CreateCampaign(request(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value


async def invalid(env, **fields) -> list[str]:
    return violations(await refused(env, **fields))


def reason(exc: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a campaign service error (its domain checked on the way)."""
    domain, name = error_reason(exc)
    assert domain == "campaign.herald", (domain, name)
    return name


@pytest.mark.parametrize("fields, field", [
    (dict(id="x" * 256), "id"),
    (dict(sender_id=""), "sender_id"),
    (dict(sender_id="s" * 256), "sender_id"),
    (dict(user_ids=[]), "segment_ids"),
    (dict(user_ids=["u1"], segment_ids=["s1"]), "user_ids"),
    (dict(user_ids=[f"u{i}" for i in range(10_001)]), "user_ids"),
    (dict(user_ids=["u1"] * 12 + [""]), "user_ids[12]"),
    (dict(user_ids=["u1", "x" * 256]), "user_ids[1]"),
    (dict(segment_ids=[f"s{i}" for i in range(26)]), "segment_ids"),
    (dict(segment_ids=["s1", ""]), "segment_ids[1]"),
    (dict(message_template=None), "message_template"),
    (dict(message_template=MT(text="")), "message_template.text"),
    (dict(message_template=MT(text="hi", attachments=[struct({"a": 1})] * 31)), "message_template.attachments"),
    (dict(create_channels=True), "channel_template"),
    (dict(channel_template=CT()), "channel_template.type"),
    (dict(channel_template=CT(type="t" * 65)), "channel_template.type"),
    (dict(channel_template=CT(type="messaging", team="t" * 1001)), "channel_template.team"),
    (dict(channel_template=CT(type="messaging", members=[f"m{i}" for i in range(1001)])), "channel_template.members"),
    (dict(channel_template=CT(type="messaging", members_template=[
        common_pb2.ChannelMemberTemplate(user_id=f"m{i}") for i in range(1001)])), "channel_template.members_template"),
    (dict(channel_template=CT(type="messaging", members=["a"], members_template=[
        common_pb2.ChannelMemberTemplate(user_id="b")])), "channel_template.members_template"),
    (dict(channel_template=CT(type="messaging", members_template=[common_pb2.ChannelMemberTemplate()])),
     "channel_template.members_template[0].user_id"),
    (dict(sender_mode=7), "sender_mode"),
    (dict(sender_visibility=3), "sender_visibility"),
    # What would otherwise fail every recipient at send time is refused now.
    (dict(channel_template=CT(type="a:b")), "channel_template.type"),
    (dict(channel_template=CT(type="messaging", id="c" * 256)), "channel_template.id"),
    (dict(channel_template=CT(type="messaging", members=["ok", ""])), "channel_template.members[1]"),
    (dict(channel_template=CT(type="messaging", members=["m" * 256])), "channel_template.members[0]"),
    (dict(channel_template=CT(type="messaging", members_template=[
        common_pb2.ChannelMemberTemplate(user_id="m" * 256)])), "channel_template.members_template[0].user_id"),
    (dict(message_template=MT(text="hi", poll_id="p" * 256)), "message_template.poll_id"),
    (dict(name="a\x00b"), "name"),
    (dict(description="\x00"), "description"),
    (dict(message_template=MT(text="hi\x00")), "message_template.text"),
])
async def test_each_rule_is_invalid_argument_on_its_field(env, fields, field):
    if fields.get("message_template", 0) is None:
        fields = {k: v for k, v in fields.items() if k != "message_template"}
        req = cs.CreateCampaignRequest(sender_id="sender", user_ids=["u1"])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await env.client.CreateCampaign(req)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(caught.value)
        return
    exc = await refused(env, **fields)
    assert field in violations(exc)
    assert reason(exc) == "INVALID_ARGUMENT"


@pytest.mark.parametrize("fields, field", [
    (dict(id="x" * 256), "id"),
    (dict(user_ids=[f"u{i}" for i in range(10_001)]), "user_ids"),
    (dict(segment_ids=[f"s{i}" for i in range(26)]), "segment_ids"),
    (dict(message_template=MT(text="hi", attachments=[struct({"a": 1})] * 31)), "message_template.attachments"),
    (dict(channel_template=CT(type="t" * 65)), "channel_template.type"),
    (dict(channel_template=CT(type="messaging", members=[f"m{i}" for i in range(1001)])), "channel_template.members"),
    (dict(message_template=MT(text="{{ receiver.name")), "message_template.text"),
])
async def test_update_applies_the_same_rules(env, fields, field):
    campaign = await env.create()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.UpdateCampaign(cs.UpdateCampaignRequest(**{**_writable(request(id=campaign.id)), **fields}))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in violations(caught.value)


def _writable(create: cs.CreateCampaignRequest) -> dict:
    return {f.name: getattr(create, f.name) for f, _ in create.ListFields()}


async def test_limits_themselves_are_accepted(env):
    ids = [f"u{i}" for i in range(10_000)]
    campaign = await env.create(user_ids=ids, message_template=MT(text="hi", attachments=[struct({"a": 1})] * 30),
                                channel_template=CT(type="t" * 64, team="t" * 1000,
                                                    members=[f"m{i}" for i in range(1000)]),
                                id="c" * 255)
    assert len(campaign.user_ids) == 10_000
    assert campaign.id == "c" * 255


async def test_all_local_violations_are_reported_at_once(env):
    fields = await invalid(env, id="x" * 256, sender_id="", message_template=MT(text="{{ nope }}"),
                           create_channels=True)
    assert {"id", "sender_id", "message_template.text", "channel_template"} <= set(fields)


@pytest.mark.parametrize("fields, field", [
    (dict(message_template=MT(text="Hi {{ receiver.name")), "message_template.text"),
    (dict(message_template=MT(text="Hi {{ stranger }}")), "message_template.text"),
    (dict(message_template=MT(text="{% for %}")), "message_template.text"),
    (dict(message_template=MT(text="hi", custom=struct({"x": "{{ nobody }}"}))), "message_template.custom.x"),
    (dict(message_template=MT(text="hi", attachments=[struct({"a": "ok"}), struct({"y": "{{ oops"})])),
     "message_template.attachments[1].y"),
    (dict(channel_template=CT(type="messaging", id="{{ receiver.id }-x")), "channel_template.id"),
    (dict(channel_template=CT(type="messaging", custom=struct({"k": {"deep": "{{ what }}"}}))),
     "channel_template.custom.k.deep"),
    (dict(channel_template=CT(type="messaging", members_template=[
        common_pb2.ChannelMemberTemplate(user_id="{{ unknown.id }}")])), "channel_template.members_template[0].user_id"),
])
async def test_each_bad_template_is_invalid_argument_at_create(env, fields, field):
    exc = await refused(env, **fields)
    assert field in violations(exc)
    assert reason(exc) == "TEMPLATE_INVALID"


async def test_good_templates_use_sender_receiver_and_channel(env):
    campaign = await env.create(
        message_template=MT(text="Hi {{ receiver.name }}, {{ sender.name }} in {{ channel.id }}",
                            custom=struct({"n": "{{ receiver.custom.nickname }}"})),
        channel_template=CT(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"), create_channels=True)
    assert campaign.create_channels and campaign.channel_template.id == "{{ receiver.id }}-{{ sender.id }}"


async def test_unknown_sender_is_invalid_argument_on_sender_id(env):
    exc = await refused(env, sender_id="ghost")
    assert (violations(exc), reason(exc)) == (["sender_id"], "SENDER_NOT_FOUND")


async def test_unknown_segment_is_named_by_position(env):
    known = await env.segment(targets=["u1"])
    exc = await refused(env, segment_ids=[known, "missing"])
    assert (violations(exc), reason(exc)) == (["segment_ids[1]"], "SEGMENT_NOT_FOUND")


async def test_segments_of_mixed_types_are_invalid(env):
    users = await env.segment(type_=1, targets=["u1"])
    channels = await env.segment(type_=2, targets=["messaging:general"])
    exc = await refused(env, segment_ids=[users, channels])
    assert (violations(exc), reason(exc)) == (["segment_ids"], "SEGMENT_TYPE_MISMATCH")
    draft = await env.create(segment_ids=[users])
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # Update checks it too
        await env.client.UpdateCampaign(cs.UpdateCampaignRequest(
            **{**_writable(request(id=draft.id)), "user_ids": [], "segment_ids": [users, channels]}))
    assert (violations(caught.value), reason(caught.value)) == (["segment_ids"], "SEGMENT_TYPE_MISMATCH")


async def test_receiver_is_rejected_for_channel_segments(env):
    channels = await env.segment(type_=2, targets=["messaging:general"])
    exc = await refused(env, segment_ids=[channels],
                        message_template=MT(text="Hi {{ receiver.name }}", custom=struct({"a": "{{ receiver.id }}"})))
    assert violations(exc) == ["message_template.text", "message_template.custom"]
    assert reason(exc) == "TEMPLATE_INVALID"
    campaign = await env.create(segment_ids=[channels], message_template=MT(text="News in {{ channel.id }}"))
    assert list(campaign.segment_ids) == [channels]
    assert [s.id for s in campaign.segments] == [channels]


async def test_id_generated_when_omitted_and_taken_id_is_already_exists(env):
    generated = await env.create()
    assert len(generated.id) == 36
    await env.create(id="mine")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.create(id="mine")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(caught.value) == "CAMPAIGN_ALREADY_EXISTS"


async def test_duplicate_ids_are_kept_once(env):
    campaign = await env.create(user_ids=["u2", "u1", "u2"])
    assert list(campaign.user_ids) == ["u2", "u1"]


async def test_segment_service_outage_is_unavailable(env):
    await env.stop()
    await env.start(env.build_app(segment_port=1))  # nothing listens on port 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.create()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(caught.value) == "DEPENDENCY_UNAVAILABLE"


# --- update -------------------------------------------------------------------------------------

async def test_update_replaces_every_writable_field_and_validates_like_create(env):
    created = await env.create(name="old", description="d", skip_push=True)
    segment = await env.segment(targets=["u1"])
    updated = (await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id=created.id, name="new",
                                                       segment_ids=[segment]))).campaign
    assert (updated.name, updated.description, updated.skip_push) == ("new", "", False)
    assert list(updated.segment_ids) == [segment] and list(updated.user_ids) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id=created.id,
                                                message_template=MT(text="{{ bad ")))
    assert (violations(caught.value), reason(caught.value)) == (["message_template.text"], "TEMPLATE_INVALID")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id=created.id, sender_id="ghost"))
    assert (violations(caught.value), reason(caught.value)) == (["sender_id"], "SENDER_NOT_FOUND")


async def test_update_of_unknown_campaign_is_not_found(env):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(caught.value) == "CAMPAIGN_NOT_FOUND"


async def test_update_of_scheduled_campaign_is_allowed_but_not_in_progress(env):
    campaign = await env.create()
    await env.start_campaign(campaign.id, scheduled_for=_later(env, 3600))
    updated = (await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id=campaign.id, name="x"))).campaign
    assert updated.status == campaign_pb2.CAMPAIGN_STATUS_SCHEDULED and updated.name == "x"
    other = await env.create()
    await env.start_campaign(other.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.client.UpdateCampaign(request(cs.UpdateCampaignRequest, id=other.id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is in progress" in caught.value.details()
    assert reason(caught.value) == "CAMPAIGN_NOT_EDITABLE"


def _later(env, seconds: float):
    from campaign.conftest import ts
    import datetime as dt
    return ts(env.clock.now() + dt.timedelta(seconds=seconds))
