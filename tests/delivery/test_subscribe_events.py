"""SubscribeEvents over real gRPC: a subscriber gets the channel.created and message.new events of
its users, in sequence order, each once, resumes after the last one it saw, and is told
OUT_OF_RANGE when what it would resume after was pruned."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, message_service_pb2

from delivery.helpers import campaign, get, start, upsert_users, wait_done
from harness import DEADLINE_S, error_reason, eventually, violations
from services.delivery_svc import store
from services.delivery_svc.retention import Retention

SENDER = "boss"


class Subscriber:
    """One SubscribeEvents stream, read in the background into `events`."""

    def __init__(self, stubs, user_ids, after_sequence: int = 0, types=()) -> None:
        self.call = stubs.messages.SubscribeEvents(message_service_pb2.SubscribeEventsRequest(
            user_ids=list(user_ids), after_sequence=after_sequence, types=list(types)))
        self.events: list[delivery_pb2.Event] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            self.events.append(response.event)

    async def ready(self) -> int:
        """Waits for the stream's headers: from then on every event after the sequence they name
        (returned) comes on it."""
        metadata = await asyncio.wait_for(self.call.initial_metadata(), DEADLINE_S)
        return int(dict(metadata)["herald-after-sequence"])

    async def until(self, condition, what: str) -> list[delivery_pb2.Event]:
        """Waits until `condition(events)` holds; fails with what it saw last (and how the stream ended)."""
        def observe():
            if self.reader.done() and not self.reader.cancelled() and self.reader.exception():
                raise AssertionError(f"{what}: the stream ended with {self.reader.exception()!r}")
            return self.events
        return await eventually(observe, lambda events: condition(events), what=what)

    async def ended_with(self) -> grpc.aio.AioRpcError:
        """The error the stream ended with."""
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(self.reader, DEADLINE_S)
        return caught.value

    def close(self) -> None:
        self.call.cancel()


def keys(events) -> list[tuple[str, str]]:
    return [(event.type, event.cid) for event in events]


def expected_for(users) -> set[tuple[str, str]]:
    """channel.created and message.new of each user's 1-1 channel with the sender."""
    return {(type_, f"messaging:{user}-{SENDER}") for user in users for type_ in store.IN_APP_TYPES}


async def test_a_subscriber_that_disconnects_mid_campaign_and_resumes_gets_every_event_of_its_users_once(
        make_system):
    # Paced, so that the campaign is still sending when the first stream goes away.
    _, stubs = await make_system(delivery_batch_size=10, max_send_rate=200)
    everyone = [f"u{i:03}" for i in range(300)]
    mine = everyone[::10]
    await upsert_users(stubs.directory, [SENDER, *everyone])
    first = Subscriber(stubs, mine)
    await first.ready()

    await start(stubs, campaign("c1", sender_id=SENDER, user_ids=everyone))
    seen_first = await first.until(lambda events: len(events) >= 6, "the first events")
    first.close()
    assert (await get(stubs, "c1")).status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
    await asyncio.gather(first.reader, return_exceptions=True)
    seen_first = list(first.events)

    second = Subscriber(stubs, mine, after_sequence=seen_first[-1].sequence)
    await wait_done(stubs, "c1")
    expected = expected_for(mine)
    union = await second.until(lambda events: set(keys(seen_first + events)) >= expected,
                               "every event of my users")
    union = seen_first + union

    assert len({event.id for event in union}) == len(union), "an event came twice"
    assert set(keys(union)) == expected
    for stream in (seen_first, second.events):
        sequences = [event.sequence for event in stream]
        assert sequences == sorted(set(sequences))
    assert all(set(event.user_ids) & set(mine) and SENDER in event.user_ids for event in union)
    message = next(event for event in union if event.type == "message.new")
    assert message.message.text == f"Hi Name {message.cid.split(':')[1].split('-')[0]} from Name {SENDER}"
    assert message.message.created_by_campaign_id == "c1" and message.channel.cid == message.cid
    second.close()


async def test_a_subscriber_gets_only_its_users_events_of_the_types_it_asked_for(make_system):
    _, stubs = await make_system()
    await upsert_users(stubs.directory, [SENDER, "ann", "bob", "cat", "zed"])
    ann_channels = Subscriber(stubs, ["ann"], types=["channel.created"])
    bob_all = Subscriber(stubs, ["bob", "nobody"])
    zed = Subscriber(stubs, ["zed"], types=["message.new", "message.new"])
    for subscriber in (ann_channels, bob_all, zed):
        await subscriber.ready()

    await start(stubs, campaign("c1", sender_id=SENDER, user_ids=["ann", "bob", "cat"]))
    await wait_done(stubs, "c1")
    # A second campaign (another channel per user) marks the end: each stream is in sequence
    # order, so once its event of c2 is there, everything of c1 it would get is there too.
    news = common_pb2.ChannelTemplate(type="news", id="{{ receiver.id }}")
    await start(stubs, campaign("c2", sender_id=SENDER, user_ids=["ann", "bob", "zed"], channel_template=news))

    got = await ann_channels.until(lambda events: ("channel.created", "news:ann") in keys(events), "ann's c2")
    assert keys(got) == [("channel.created", f"messaging:ann-{SENDER}"), ("channel.created", "news:ann")]
    got = await bob_all.until(lambda events: ("message.new", "news:bob") in keys(events), "bob's c2")
    assert keys(got) == [("channel.created", f"messaging:bob-{SENDER}"), ("message.new", f"messaging:bob-{SENDER}"),
                         ("channel.created", "news:bob"), ("message.new", "news:bob")]
    got = await zed.until(lambda events: events, "zed's c2")
    assert keys(got) == [("message.new", "news:zed")]  # nothing of c1, where zed was no member
    for subscriber in (ann_channels, bob_all, zed):
        subscriber.close()


async def test_after_sequence_0_gets_only_new_events_and_its_headers_name_where_it_started(make_system):
    _, stubs = await make_system()
    await upsert_users(stubs.directory, [SENDER, "ann"])
    earlier = Subscriber(stubs, ["ann"])
    assert await earlier.ready() == 0  # an empty log
    await start(stubs, campaign("c1", sender_id=SENDER, user_ids=["ann"]))
    old = await earlier.until(lambda events: len(events) == 2, "c1's events")  # positioned: part of the log
    earlier.close()

    later = Subscriber(stubs, ["ann"])
    head = await later.ready()
    assert head >= old[-1].sequence
    news = common_pb2.ChannelTemplate(type="news", id="{{ receiver.id }}")
    await start(stubs, campaign("c2", sender_id=SENDER, user_ids=["ann"], channel_template=news))
    got = await later.until(lambda events: len(events) >= 2, "c2's events")
    assert keys(got) == [("channel.created", "news:ann"), ("message.new", "news:ann")]
    assert got[0].sequence > head
    later.close()

    # The head it started at is a resume point even before any event came.
    resumed = Subscriber(stubs, ["ann"], after_sequence=head)
    assert await resumed.ready() == head
    assert keys(await resumed.until(lambda events: len(events) >= 2, "c2's events again")) == keys(got)
    resumed.close()


async def prune_what_is_due(system, count: int) -> None:
    """Runs retention with HERALD_EVENT_RETENTION_H 0 (every event is due once every destination
    has passed it) until `count` events went."""
    app = system.servers["delivery"].service
    retention = Retention(app.sessions, app.dispatcher.destinations, event_retention_h=0, dead_letter_retention_h=168)
    pruned = 0

    async def prune() -> int:
        nonlocal pruned
        pruned += (await retention.prune_once())[0]
        return pruned
    await eventually(prune, lambda total: total >= count, what=f"{count} events pruned")


def error_metadata(error: grpc.aio.AioRpcError) -> dict[str, str]:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


async def test_a_position_older_than_what_is_kept_is_out_of_range_and_one_ahead_of_the_log_too(make_system):
    system, stubs = await make_system(delivery_batch_size=2)
    users = ["ann", "bob", "cat", "dan"]
    await upsert_users(stubs.directory, [SENDER, *users])
    everything = Subscriber(stubs, users)
    await everything.ready()
    await start(stubs, campaign("c1", sender_id=SENDER, user_ids=users))
    pruned = await everything.until(lambda events: len(events) == 8, "c1's events")
    everything.close()
    await prune_what_is_due(system, len(pruned))
    news = common_pb2.ChannelTemplate(type="news", id="{{ receiver.id }}")
    await start(stubs, campaign("c2", sender_id=SENDER, user_ids=users, channel_template=news))
    await wait_done(stubs, "c2")

    # Resuming after the last pruned event loses nothing: it continues with the oldest kept.
    resumed = Subscriber(stubs, users, after_sequence=pruned[-1].sequence)
    got = await resumed.until(lambda events: len(events) == 8, "c2's events")
    assert {cid for _, cid in keys(got)} == {f"news:{user}" for user in users}
    resumed.close()

    for after, reason in [(pruned[-2].sequence, "SEQUENCE_EXPIRED"), (1, "SEQUENCE_EXPIRED"),
                          (got[-1].sequence + 10**6, "SEQUENCE_AHEAD")]:
        error = await Subscriber(stubs, users, after_sequence=after).ended_with()
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error.details()
        assert error_reason(error) == ("delivery.herald", reason), error.details()
        assert str(after) in error.details()
        if reason == "SEQUENCE_EXPIRED":
            assert error_metadata(error) == {"oldest_after_sequence": str(pruned[-1].sequence)}


@pytest.mark.parametrize("request_fields, fields", [
    ({}, ["user_ids"]),
    ({"user_ids": [f"u{i}" for i in range(1001)]}, ["user_ids"]),
    ({"user_ids": ["ann", ""]}, ["user_ids[1]"]),
    ({"user_ids": ["x" * 256]}, ["user_ids[0]"]),
    ({"user_ids": ["a\x00"]}, ["user_ids[0]"]),
    ({"user_ids": ["ann"], "after_sequence": -1}, ["after_sequence"]),
    ({"user_ids": ["ann"], "types": ["campaign.completed"]}, ["types[0]"]),
    ({"user_ids": ["ann"], "types": ["message.new", "message.read"]}, ["types[1]"]),
    ({"after_sequence": -5, "types": [""]}, ["user_ids", "after_sequence", "types[0]"]),
])
async def test_bad_input_is_invalid_argument_naming_each_field(stubs, request_fields, fields):
    call = stubs.messages.SubscribeEvents(message_service_pb2.SubscribeEventsRequest(**request_fields))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert error_reason(caught.value) == ("delivery.herald", "INVALID_ARGUMENT")
    assert violations(caught.value) == fields


async def test_shutdown_ends_the_stream_with_unavailable(make_system):
    system, stubs = await make_system()
    subscriber = Subscriber(stubs, ["ann"])
    await subscriber.ready()

    await system.servers["delivery"].stop(0.5)
    error = await subscriber.ended_with()
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert error_reason(error) == ("delivery.herald", "SERVER_SHUTTING_DOWN")
