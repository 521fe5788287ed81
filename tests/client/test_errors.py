"""What goes wrong, through `HeraldClient`: one `HeraldError` family keeping the status code, the
ErrorInfo reason and domain and the field violations, one line each; bad plain values refused
before any call; UNAVAILABLE retried on idempotent calls only, across a real restart;
RESOURCE_EXHAUSTED waited out as its RetryInfo says; deadlines; watches that outlive a restart."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from harness import DEADLINE_S, _start, eventually
from herald.campaign.v1 import campaign_pb2
from services.client import HeraldClient, HeraldError
from services.client.errors import DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.kit.probes import free_port

from client.conftest import campaign_fields, client_of, users


def counted(stub, rpc: str) -> list[grpc.StatusCode]:
    """Replaces `stub.<rpc>` by one that records each failed attempt's status code."""
    failures: list[grpc.StatusCode] = []
    real = getattr(stub, rpc)

    async def call(request, **kwargs):
        try:
            return await real(request, **kwargs)
        except grpc.aio.AioRpcError as exc:
            failures.append(exc.code())
            raise

    setattr(stub, rpc, call)
    return failures


async def test_not_found_keeps_the_code_reason_domain_and_metadata(herald):
    with pytest.raises(NotFound) as caught:
        await herald.get_campaign("nope")
    error = caught.value
    assert isinstance(error, HeraldError) and error.code == grpc.StatusCode.NOT_FOUND
    assert (error.reason, error.domain) == ("CAMPAIGN_NOT_FOUND", "campaign.herald")
    assert str(error) == "NOT_FOUND: campaign nope does not exist (CAMPAIGN_NOT_FOUND)"

    with pytest.raises(NotFound) as caught:
        await herald.get_segment("nope")
    assert (caught.value.reason, caught.value.domain, caught.value.metadata) == (
        "SEGMENT_NOT_FOUND", "segment.herald", {"field": "id"})
    with pytest.raises(NotFound) as caught:
        await herald.get_delivery("nope")
    assert caught.value.domain == "delivery.herald"

    # An id the service echoes with a line break still makes one line.
    with pytest.raises(NotFound) as caught:
        await herald.get_campaign("a\nb")
    assert "\n" in caught.value.message and str(caught.value) == (
        "NOT_FOUND: campaign a\\nb does not exist (CAMPAIGN_NOT_FOUND)")


async def test_invalid_argument_names_the_fields_in_one_line(herald):
    await users(herald, "boss", "ann")
    with pytest.raises(InvalidArgument) as caught:
        await herald.create_campaign(campaign_fields(user_ids=["ann"], message_template={"text": "Hi {{ oops"}))
    error = caught.value
    assert [(v.field, v.reason) for v in error.field_violations] == [("message_template.text", "TEMPLATE_INVALID")]
    assert "syntax error" in error.field_violations[0].description
    assert error.reason == "TEMPLATE_INVALID" and error.domain == "campaign.herald"
    line = str(error)
    assert line.startswith("INVALID_ARGUMENT: ") and "message_template.text" in line and "\n" not in line

    with pytest.raises(InvalidArgument) as caught:
        await herald.create_campaign(campaign_fields(user_ids=["ann"], sender_id="ghost"))
    assert [v.field for v in caught.value.field_violations] == ["sender_id"]
    assert str(caught.value).startswith("INVALID_ARGUMENT: sender_id: ")

    with pytest.raises(InvalidArgument) as caught:  # several at once
        await herald.create_campaign(user_ids=["ann"])
    assert [v.field for v in caught.value.field_violations] == ["sender_id", "message_template"]
    with pytest.raises(InvalidArgument) as caught:
        await herald.add_segment_targets("nope", ["a", ""])
    assert [v.field for v in caught.value.field_violations] == ["target_ids[1]"]


async def test_bad_plain_values_raise_before_any_call():
    nowhere = f"127.0.0.1:{free_port()}"  # a call made would fail UNAVAILABLE, not as below
    herald = HeraldClient(segment_addr=nowhere, campaign_addr=nowhere, delivery_addr=nowhere, token="t",
                          retry_unavailable_s=0)
    try:
        with pytest.raises(ValueError, match="'sideways' is not a SenderMode .*exclude, include"):
            await herald.create_campaign(campaign_fields(user_ids=["ann"], sender_mode="sideways"))
        with pytest.raises(ValueError, match="'usr' is not a SegmentType"):
            await herald.create_segment("usr", name="x")
        with pytest.raises(TypeError, match="CreateCampaignRequest has no field 'colour'"):
            await herald.create_campaign(campaign_fields(user_ids=["ann"]), colour="red")
        with pytest.raises(TypeError, match="MessageTemplate has no field 'txt'"):
            await herald.create_campaign(campaign_fields(user_ids=["ann"], message_template={"txt": "Hi"}))
        with pytest.raises(TypeError, match="SortParam has no field 'order'"):
            await herald.query_campaigns(sort=[{"field": "name", "order": 1}])
        with pytest.raises(ValueError, match="chunk_size"):
            await herald.import_users([], chunk_size=0)
        with pytest.raises(Unavailable):  # and the same client does call when the values are good
            await herald.get_campaign("x")
    finally:
        await herald.close()


async def test_unavailable_is_retried_on_idempotent_calls_only_across_a_restart(system_and_client):
    system, _ = system_and_client
    herald = client_of(system, retry_unavailable_s=DEADLINE_S, timeout=DEADLINE_S)
    try:
        await herald.create_segment("user", id="kept", name="Kept")
        get_failures = counted(herald.segments, "GetSegment")
        create_failures = counted(herald.segments, "CreateSegment")
        await system.servers["segment"].stop(0.5)

        with pytest.raises(Unavailable):
            await herald.create_segment("user", id="lost", name="Lost")
        assert create_failures == [grpc.StatusCode.UNAVAILABLE]  # not retried: it may have been done

        getting = asyncio.create_task(herald.get_segment("kept"))
        await eventually(lambda: len(get_failures), lambda n: n >= 2, what="GetSegment failing while down")
        assert not getting.done()
        system.servers["segment"] = await _start("segment", system.settings)  # the same port and database
        kept = await asyncio.wait_for(getting, DEADLINE_S)
        assert kept.name == "Kept" and set(get_failures) == {grpc.StatusCode.UNAVAILABLE}
    finally:
        await herald.close()


async def test_the_deadline_covers_the_retries(system_and_client):
    system, _ = system_and_client
    herald = client_of(system, retry_unavailable_s=10 * DEADLINE_S)
    try:
        await system.servers["segment"].stop(0.5)
        # Retried for a second at most, then the last error: not for retry_unavailable_s.
        with pytest.raises((Unavailable, DeadlineExceeded)):
            await asyncio.wait_for(herald.get_segment("x", timeout=1.0), DEADLINE_S / 2)
    finally:
        await herald.close()


async def test_resource_exhausted_is_waited_out_as_retry_info_says(make_system):
    system, patient = await make_system(names=("segment",), caller_rate_limit=1.0)  # a call a second a caller
    refused = counted(patient.segments, "CreateSegment")
    for i in range(3):  # each call past the first waits for its turn; a create too (refused before anything)
        await patient.create_segment("user", id=f"s{i}", name=f"S {i}")
    assert [s.id async for s in patient.iter_segments(sort=["id"])] == ["s0", "s1", "s2"]
    assert refused and set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}

    impatient = client_of(system, subject="impatient", max_retry_wait_s=0)
    try:
        with pytest.raises(ResourceExhausted) as caught:
            for _ in range(20):  # a burst of one: the second call within the second is refused
                await impatient.segment_target_exists("s0", "ann")
        error = caught.value
        assert error.reason == "RATE_LIMITED" and 0 < error.retry_after_s <= 1.0
        assert "impatient" in str(error)
    finally:
        await impatient.close()


async def test_a_call_past_its_deadline_raises_deadline_exceeded(herald):
    await users(herald, "ann")
    stalled = asyncio.Event()  # never set: the import waits for its next chunk past the deadline

    async def slow_users():
        yield {"id": "bob", "name": "Bob"}
        await stalled.wait()

    with pytest.raises(DeadlineExceeded) as caught:
        await asyncio.wait_for(herald.import_users(slow_users(), chunk_size=1, timeout=0.5), DEADLINE_S)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    failures = counted(herald.directory, "GetUsers")
    with pytest.raises(DeadlineExceeded):
        await herald.get_users(["ann"], timeout=0)
    assert failures == [grpc.StatusCode.DEADLINE_EXCEEDED]  # not retried, though idempotent
    assert [u.id for u in (await herald.get_users(["ann"])).users] == ["ann"]


async def test_watch_campaign_reconnects_when_campaign_svc_restarts(system_and_client):
    system, _ = system_and_client
    herald = client_of(system, retry_unavailable_s=DEADLINE_S)
    try:
        await users(herald, "boss", "ann")
        await herald.create_campaign(campaign_fields(id="hello", user_ids=["ann"]))
        watch = herald.watch_campaign("hello")
        assert (await asyncio.wait_for(anext(watch), DEADLINE_S)).status == campaign_pb2.CAMPAIGN_STATUS_DRAFT
        await system.restart("campaign")  # the open stream ends with UNAVAILABLE; the iterator dials again
        # The channel may still be waiting to reconnect, and a start is not retried: an idempotent
        # read first, retried until the channel is up again.
        assert (await herald.get_campaign("hello")).status == campaign_pb2.CAMPAIGN_STATUS_DRAFT
        await herald.start_campaign("hello")

        async def rest() -> list[int]:
            return [c.status async for c in watch]

        assert (await asyncio.wait_for(rest(), DEADLINE_S))[-1] == campaign_pb2.CAMPAIGN_STATUS_COMPLETED
    finally:
        await herald.close()
