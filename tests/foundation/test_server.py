"""The kit server over a real channel: auth, error mapping, health, reflection, retries."""

from __future__ import annotations

from dataclasses import replace

import grpc
import jwt
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from harness import TEST_SECRET, client_channel, error_reason, eventually, serving, test_settings
from probe import ProbeService, method
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.retry import call_idempotent


@pytest.fixture
async def probe(tmp_path):
    service = ProbeService()
    async with serving(service, test_settings(tmp_path)) as running:
        running.probe = service
        yield running


def _call(channel, name):
    return channel.unary_unary(method(name), request_serializer=wrappers_pb2.StringValue.SerializeToString,
                               response_deserializer=wrappers_pb2.StringValue.FromString)


def _details(exc: grpc.aio.AioRpcError) -> list:
    status = rpc_status.from_call(exc)
    out = []
    for any_detail in status.details if status else []:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if any_detail.Is(kind.DESCRIPTOR):
                detail = kind()
                any_detail.Unpack(detail)
                out.append(detail)
    return out


async def _code_of(channel, name, value="x"):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, name)(wrappers_pb2.StringValue(value=value))
    return info.value


@pytest.mark.parametrize("token, reason", [
    (None, "TOKEN_MISSING"), ("Bearer not-a-jwt", "TOKEN_INVALID"), ("Basic abc", "TOKEN_INVALID"),
    ("Bearer " + make_token("another-secret-0123456789abcdef-0123", "x"), "TOKEN_INVALID"),
    ("Bearer " + jwt.encode({"server": True, "exp": 1}, TEST_SECRET, algorithm="HS256"), "TOKEN_EXPIRED")])
async def test_calls_without_a_valid_token_are_unauthenticated(probe, token, reason):
    channel = open_channel(f"127.0.0.1:{probe.port}", token=None)
    metadata = (("authorization", token),) if token else ()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, "Echo")(wrappers_pb2.StringValue(value="hi"), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(info.value) == ("segment.herald", reason)  # the probe serves as segment
    await channel.close()


async def test_a_token_without_the_server_claim_is_refused(probe):
    token = jwt.encode({"sub": "x"}, TEST_SECRET, algorithm="HS256")
    channel = open_channel(f"127.0.0.1:{probe.port}", token=token)
    exc = await _code_of(channel, "Echo")
    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(exc) == ("segment.herald", "TOKEN_INVALID")
    await channel.close()


async def test_a_valid_token_reaches_the_handler_with_its_subject(probe):
    async with client_channel(probe.port, subject="billing") as channel:
        reply = await _call(channel, "Echo")(wrappers_pb2.StringValue(value="hi"))
    assert reply.value == "hi|billing"


async def test_invalid_argument_names_every_field(probe):
    async with client_channel(probe.port) as channel:
        exc = await _code_of(channel, "Fail", "invalid")
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    error_info, bad_request = _details(exc)
    assert (error_info.domain, error_info.reason) == ("segment.herald", "INVALID_ARGUMENT")
    assert [v.field for v in bad_request.field_violations] == ["user_ids[12]", "message_template.text"]
    assert {v.reason for v in bad_request.field_violations} == {"INVALID_ARGUMENT"}


async def test_a_request_that_cannot_be_decoded_is_invalid_argument_after_authentication(probe):
    raw = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    garbage = b"\xff\xff\xff"
    async with client_channel(probe.port) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(method("Echo"), **raw)(garbage)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == ("segment.herald", "REQUEST_UNDECODABLE")
    async with open_channel(f"127.0.0.1:{probe.port}", token=None) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await anonymous.unary_unary(method("Echo"), **raw)(garbage)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(info.value) == ("segment.herald", "TOKEN_MISSING")


async def test_domain_errors_carry_error_info_and_retry_info(probe):
    async with client_channel(probe.port) as channel:
        not_found = await _code_of(channel, "Fail", "not_found")
        exhausted = await _code_of(channel, "Fail", "exhausted")
    assert not_found.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(not_found) == ("segment.herald", "CAMPAIGN_NOT_FOUND")
    assert exhausted.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(exhausted) == ("segment.herald", "RATE_LIMITED")
    retry_info = [d for d in _details(exhausted) if isinstance(d, error_details_pb2.RetryInfo)][0]
    assert retry_info.retry_delay.ToMilliseconds() == 1500


async def test_unexpected_exceptions_are_opaque_internal_not_unknown(probe, caplog):
    async with client_channel(probe.port) as channel:
        exc = await _code_of(channel, "Fail", "bug")
        unimplemented = await _code_of(channel, "Fail", "unimplemented")
    assert exc.code() == grpc.StatusCode.INTERNAL
    assert error_reason(exc) == ("segment.herald", "INTERNAL")
    assert "passwd" not in (exc.details() or "")
    logged = [r for r in caplog.records if r.name == "herald.rpc" and r.levelname == "ERROR"]
    assert logged and "passwd" in str(logged[0].exc_info[1])  # the cause is in the log, not the reply
    assert unimplemented.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error_reason(unimplemented) == ("segment.herald", "METHOD_NOT_IMPLEMENTED")


async def test_an_exhausted_connection_pool_is_unavailable_to_retry_not_internal(probe):
    async with client_channel(probe.port) as channel:
        exc = await _code_of(channel, "Fail", "pool_busy")
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(exc) == ("segment.herald", "DATABASE_BUSY")


async def test_health_and_reflection_need_no_token(probe):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "herald.test.v1.ProbeService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        async for response in responses:
            names = {s.name for s in response.list_services_response.service}
            break
    assert "herald.test.v1.ProbeService" in names


async def test_idempotent_calls_retry_unavailable_only(probe):
    probe.probe.unavailable_left = 2
    async with client_channel(probe.port) as channel:
        reply = await call_idempotent(_call(channel, "Flaky"), wrappers_pb2.StringValue(), timeout=5)
        assert reply.value == "ok"
        probe.probe.unavailable_left = 100
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call_idempotent(_call(channel, "Flaky"), wrappers_pb2.StringValue(), timeout=5, attempts=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert probe.probe.unavailable_left == 97  # three attempts, then gave up
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call_idempotent(_call(channel, "Fail"), wrappers_pb2.StringValue(value="invalid"), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_each_caller_is_held_to_its_call_rate_with_retry_info(tmp_path):
    # One call per 20 s: however slow the machine, the second call comes too soon.
    settings = replace(test_settings(tmp_path), caller_rate_limit=0.05)
    async with serving(ProbeService(), settings) as running:
        async with client_channel(running.port, subject="noisy") as noisy, \
                client_channel(running.port, subject="quiet") as quiet, \
                client_channel(running.port, subject="service:delivery") as service:
            await _call(noisy, "Echo")(wrappers_pb2.StringValue(value="x"))  # a burst of one
            exc = await _code_of(noisy, "Echo")
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_reason(exc) == ("segment.herald", "RATE_LIMITED")
            retry = [d for d in _details(exc) if isinstance(d, error_details_pb2.RetryInfo)][0]
            assert 0 < retry.retry_delay.ToMilliseconds() <= 20_000
            # Other callers, and services calling each other, are not affected.
            assert (await _call(quiet, "Echo")(wrappers_pb2.StringValue(value="q"))).value == "q|quiet"
            for _ in range(10):
                await _call(service, "Echo")(wrappers_pb2.StringValue(value="s"))


async def test_a_target_naming_two_replicas_spreads_calls_over_both(tmp_path):
    first, second = ProbeService(), ProbeService()
    async with serving(first, test_settings(tmp_path)) as a, serving(second, test_settings(tmp_path)) as b:
        settings = replace(test_settings(tmp_path), segment_target=f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}")
        channel = open_channel(settings.target("segment"), token=make_token(TEST_SECRET, "t"))
        try:
            async def both_served():
                await _call(channel, "Echo")(wrappers_pb2.StringValue(value="x"))
                return first.echoed, second.echoed
            await eventually(both_served, lambda counts: min(counts) > 0, what="calls reaching each replica")
        finally:
            await channel.close()
