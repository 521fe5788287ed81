"""Webhooks end to end, against a real HTTP receiver on loopback: every event of a campaign is
POSTed, signed two ways (X-Signature; the Standard Webhooks headers, checked with the
`standardwebhooks` package), with the full objects; skip_webhook and HERALD_WEBHOOK_EVENT_TYPES
are honoured; a receiver that is down, then failing, then well gets every event; a refused one
becomes a dead letter that a replay sends again with the same X-Webhook-Id."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from contextlib import AsyncExitStack

import grpc
import pytest
from standardwebhooks import Webhook

from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import message_service_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from harness import TEST_SECRET, error_reason, eventually, serve_system, violations
from services.kit.config import new_webhook_secret
from services.kit.probes import free_port

from delivery.helpers import Stubs, campaign, start, struct, upsert_users, wait_done
from delivery.receiver import Receiver, receiving

HOOK = "/hook"
WEBHOOK_SECRET = new_webhook_secret()
FAST_RETRIES = dict(webhook_backoff_s=0.02, webhook_backoff_max_s=0.1)
ONE_TO_ONE = common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}")


def posted(receiver: Receiver, *, delivered_only: bool = True) -> list[dict]:
    """The bodies received (those answered 2xx), in arrival order, each with its webhook id."""
    return [{**json.loads(r.body), "_id": r.headers["x-webhook-id"]} for r in receiver.at(HOOK)
            if not delivered_only or 200 <= r.status < 300]


@pytest.fixture
async def system(new_db_url, tmp_path):
    """`system, stubs, receiver = await system(**overrides)`: the services with a webhook receiver."""
    async with AsyncExitStack() as stack:
        async def make(names=("segment", "delivery", "campaign"), port: int = 0, receiver_up: bool = True, **overrides):
            receiver = await stack.enter_async_context(receiving(port)) if receiver_up else None
            url = f"{receiver.url}{HOOK}" if receiver is not None else f"http://127.0.0.1:{port}{HOOK}"
            running = await stack.enter_async_context(serve_system(
                new_db_url, tmp_path, names=names, webhook_url=url, webhook_secret=WEBHOOK_SECRET, **overrides))
            return running, Stubs(running.channel("segment"), running.channel("delivery")), receiver
        yield make


async def run_campaign(running, **fields) -> str:
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(running.channel("campaign"))
    fields.setdefault("message_template", common_pb2.MessageTemplate(text="Hi {{ receiver.name }}!"))
    created = await campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(
        sender_id="sender", create_channels=True, channel_template=ONE_TO_ONE, **fields))
    campaign_id = created.campaign.id
    await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=campaign_id))
    async for _ in campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id)):
        pass
    return campaign_id


async def test_every_event_is_posted_once_signed_both_ways_with_the_full_objects(system):
    running, stubs, receiver = await system()
    users = ["ann", "bob", "cat"]
    await upsert_users(stubs.directory, ["sender", *users])
    campaign_id = await run_campaign(running, name="Spring", user_ids=users)

    bodies = await eventually(lambda: posted(receiver), lambda got: len(got) >= 8, what="8 webhooks")
    await asyncio.sleep(0.2)  # nothing more comes
    assert len(receiver.at(HOOK)) == 8
    by_type: dict[str, list[dict]] = {}
    for body in bodies:
        by_type.setdefault(body["type"], []).append(body)
    assert {t: len(b) for t, b in by_type.items()} == {"campaign.started": 1, "channel.created": 3,
                                                      "message.new": 3, "campaign.completed": 1}
    assert len({body["_id"] for body in bodies}) == 8

    verifier = Webhook(WEBHOOK_SECRET)
    for request in receiver.at(HOOK):
        headers = request.headers
        assert headers["content-type"] == "application/json" and headers["x-webhook-attempt"] == "1"
        assert headers["x-signature"] == hmac.new(TEST_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert headers["webhook-id"] == headers["x-webhook-id"]
        assert verifier.verify(request.body, headers) == json.loads(request.body)

    completed = by_type["campaign.completed"][0]
    assert completed["created_at"].endswith("Z")
    assert completed["campaign"]["id"] == campaign_id and completed["campaign"]["status"] == "completed"
    stats = completed["campaign"]["stats"]  # the final stats, as numbers
    assert (stats["stats_messages_sent"], stats["stats_users_sent"], stats["stats_channels_created"],
            stats["recipients_total"], stats["progress"]) == (3, 3, 3, 3, 1.0)
    assert by_type["campaign.started"][0]["campaign"]["status"] == "in_progress"

    message = next(b for b in by_type["message.new"] if b["cid"] == "messaging:ann-sender")
    assert message["message"]["text"] == "Hi Name ann!" and message["message"]["type"] == "regular"
    assert message["message"]["created_by_campaign_id"] == campaign_id
    assert message["message"]["custom"]["campaign_id"] == campaign_id
    assert message["channel"]["cid"] == "messaging:ann-sender"
    assert (message["channel_type"], message["channel_id"]) == ("messaging", "ann-sender")
    created = next(b for b in by_type["channel.created"] if b["cid"] == "messaging:ann-sender")
    assert sorted(m["user_id"] for m in created["members"]) == ["ann", "sender"]

    # In the event log, the campaign's end comes after all its message and channel events.
    log = await running.servers["delivery"].service.outbox.read(0, 100)
    types = [event.type for event in log]
    assert types[-1] == "campaign.completed"
    assert [e.sequence for e in log] == sorted(e.sequence for e in log)


async def test_skip_webhook_leaves_out_a_campaigns_channel_and_message_events_not_its_own(system):
    running, stubs, receiver = await system()
    await upsert_users(stubs.directory, ["sender", "ann", "bob"])
    quiet = await run_campaign(running, name="quiet", user_ids=["ann"], skip_webhook=True)
    loud = await run_campaign(running, name="loud", user_ids=["bob"])

    def of(campaign_id: str, bodies: list[dict]) -> list[str]:
        return sorted(b["type"] for b in bodies
                      if b.get("campaign", {}).get("id") == campaign_id
                      or b.get("message", {}).get("created_by_campaign_id") == campaign_id
                      or (b["type"] == "channel.created" and b["cid"].startswith(
                          "messaging:ann" if campaign_id == quiet else "messaging:bob")))

    await eventually(lambda: posted(receiver), lambda got: len(of(loud, got)) == 4 and len(of(quiet, got)) == 2,
                     what="the loud campaign's 4 webhooks and the quiet one's 2")
    await asyncio.sleep(0.2)  # nothing more comes
    bodies = posted(receiver)
    assert of(loud, bodies) == ["campaign.completed", "campaign.started", "channel.created", "message.new"]
    assert of(quiet, bodies) == ["campaign.completed", "campaign.started"]


async def test_only_the_configured_event_types_are_posted(system):
    running, stubs, receiver = await system(webhook_event_types=("campaign.completed", "channel.created"))
    await upsert_users(stubs.directory, ["sender", "ann", "bob"])
    await run_campaign(running, name="x", user_ids=["ann", "bob"])
    await eventually(lambda: posted(receiver), lambda got: len(got) >= 3, what="3 webhooks")
    await asyncio.sleep(0.2)  # nothing more comes
    assert sorted(b["type"] for b in posted(receiver)) == ["campaign.completed", "channel.created", "channel.created"]


async def test_a_receiver_down_then_failing_then_well_receives_every_event_once_after_dedupe(system):
    port = free_port()
    running, stubs, _ = await system(names=("segment", "delivery"), port=port, receiver_up=False,
                                     webhook_max_attempts=10_000, **FAST_RETRIES)
    users = [f"u{i:03d}" for i in range(40)]
    await upsert_users(stubs.directory, ["sender", *users])
    await start(stubs, campaign("c1", user_ids=users))
    await wait_done(stubs, "c1")
    counters = running.servers["delivery"].service.dispatcher.counters("webhook")
    await eventually(lambda: counters.retried, lambda n: n >= 20, what="retries while the receiver is down")

    async with receiving(port) as receiver:
        receiver.answer(HOOK, 503, retry_after="0")
        await eventually(lambda: len(receiver.at(HOOK)), lambda n: n >= 30, what="POSTs answered 503")
        del receiver.answers[HOOK]  # well again
        expected = 2 * len(users)  # channel.created and message.new each
        bodies = await eventually(lambda: posted(receiver), lambda got: len({b["_id"] for b in got}) == expected,
                                  what=f"{expected} distinct events delivered")
        by_id = {b["_id"]: b for b in bodies}
        assert sorted(b["cid"] for b in by_id.values() if b["type"] == "message.new") == [
            f"messaging:{u}-sender" for u in users]
        retried = [r for r in receiver.at(HOOK) if r.headers["x-webhook-attempt"] != "1"]
        assert retried  # the same ids came back with higher attempt numbers
    letters = await stubs.messages.QueryDeadLetters(message_service_pb2.QueryDeadLettersRequest())
    assert list(letters.dead_letters) == []


async def test_a_refused_event_is_a_dead_letter_at_once_and_a_replay_sends_it_with_the_same_id(system):
    running, stubs, receiver = await system(names=("segment", "delivery"), **FAST_RETRIES)
    receiver.answer(HOOK, 400)
    await upsert_users(stubs.directory, ["sender", "ann", "bob"])
    await start(stubs, campaign("c1", user_ids=["ann", "bob"]))
    query = stubs.messages.QueryDeadLetters
    Q = message_service_pb2.QueryDeadLettersRequest
    letters = await eventually(lambda: query(Q()), lambda r: len(r.dead_letters) == 4, what="4 dead letters")
    assert len(receiver.at(HOOK)) == 4  # one attempt each: a 400 is not tried again
    for letter in letters.dead_letters:
        assert (letter.destination, letter.attempts, letter.last_http_status) == ("webhook", 1, 400)
        assert letter.last_error.startswith("HTTP 400") and letter.url == f"{receiver.url}{HOOK}"
        assert letter.first_attempt_at.seconds > 0 and letter.last_attempt_at == letter.first_attempt_at
        assert letter.event.id and letter.event.sequence > 0
    messages = await query(Q(filter=struct({"type": "message.new", "campaign_id": "c1"}),
                             sort=[common_pb2.SortParam(field="created_at", direction=-1)]))
    assert {letter.event.message.text for letter in messages.dead_letters} == {"Hi Name ann from Name sender",
                                                                               "Hi Name bob from Name sender"}
    page = await query(Q(limit=3))
    rest = await query(Q(limit=3, next=page.next))
    assert len(page.dead_letters) == 3 and len(rest.dead_letters) == 1 and not rest.next

    del receiver.answers[HOOK]
    first = messages.dead_letters[0]
    replayed = await stubs.messages.ReplayDeadLetters(message_service_pb2.ReplayDeadLettersRequest(ids=[first.id]))
    assert replayed.replayed_count == 1
    again = await eventually(lambda: posted(receiver), lambda got: len(got) == 1, what="the replayed POST")
    assert again[0]["_id"] == first.webhook_id and again[0]["message"]["id"] == first.event.message.id
    assert len((await query(Q())).dead_letters) == 3

    # Refused again: back as new dead letters with the same webhook ids.
    receiver.answer(HOOK, 422)
    before = {letter.webhook_id: letter.id for letter in (await query(Q())).dead_letters}
    replayed = await stubs.messages.ReplayDeadLetters(message_service_pb2.ReplayDeadLettersRequest(
        filter=struct({"destination": "webhook"})))
    assert replayed.replayed_count == 3
    back = await eventually(lambda: query(Q()), lambda r: len(r.dead_letters) == 3
                            and all(letter.last_http_status == 422 for letter in r.dead_letters),
                            what="the replays dead-lettered again")
    assert {letter.webhook_id for letter in back.dead_letters} == set(before)
    assert not {letter.id for letter in back.dead_letters} & set(before.values())


async def test_dead_letter_calls_name_the_bad_field(system):
    _, stubs, _ = await system(names=("segment", "delivery"))
    replay, R = stubs.messages.ReplayDeadLetters, message_service_pb2.ReplayDeadLettersRequest
    query, Q = stubs.messages.QueryDeadLetters, message_service_pb2.QueryDeadLettersRequest
    cases = [
        (replay(R()), ["ids"]),
        (replay(R(ids=["x"], all=True)), ["all"]),
        (replay(R(all=True, filter=struct({"type": "message.new"}))), ["filter"]),
        (replay(R(ids=[f"x{i}" for i in range(1001)])), ["ids"]),
        (replay(R(ids=["ok", ""])), ["ids[1]"]),
        (replay(R(filter=struct({"colour": "red"}))), ["filter.colour"]),
        (query(Q(limit=1001)), ["limit"]),
        (query(Q(filter=struct({"created_at": {"$gt": "yesterday"}}))), ["filter.created_at.$gt"]),
        (query(Q(sort=[common_pb2.SortParam(field="url", direction=1)])), ["sort[0].field"]),
        (query(Q(next="garbage")), ["next"]),
    ]
    for call, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert violations(caught.value) == fields, caught.value.details()
        assert error_reason(caught.value)[0] == "delivery.herald"
    nothing = await replay(R(all=True))
    assert nothing.replayed_count == 0


async def test_push_goes_through_the_dispatcher_and_honours_skip_push_beside_a_campaign_without_it(system):
    running, stubs, receiver = await system(push_allow_private=True)
    await upsert_users(stubs.directory, ["sender", "ann", "bob"])
    await stubs.directory.UpsertDevices(directory_service_pb2.UpsertDevicesRequest(devices=[
        directory_pb2.Device(user_id=user_id, provider=directory_pb2.DEVICE_PROVIDER_HTTP,
                             endpoint=f"{receiver.url}/push/{user_id}") for user_id in ("ann", "bob", "sender")]))
    await run_campaign(running, name="silent", user_ids=["ann"], skip_push=True)
    await run_campaign(running, name="ringing", user_ids=["bob"])
    bob = await eventually(lambda: receiver.at("/push/bob"), lambda got: len(got) == 1, what="bob's push")
    notification = json.loads(bob[0].body)
    assert notification["body"] == "Hi Name bob!" and notification["data"]["cid"] == "messaging:bob-sender"
    assert Webhook(WEBHOOK_SECRET).verify(bob[0].body, bob[0].headers)
    await asyncio.sleep(0.2)
    assert receiver.at("/push/ann") == [] and receiver.at("/push/sender") == []  # skip_push; never the sender
