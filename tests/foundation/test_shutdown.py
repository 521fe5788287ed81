"""SIGTERM on a running service: in-flight unary calls finish within the grace period, open
streams end with UNAVAILABLE, health turns NOT_SERVING, and the process exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import grpc
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import TEST_SECRET, client_channel, eventually, error_reason
from probe import method
from services.kit.probes import free_port, wait_serving

PROBE = Path(__file__).with_name("probe.py")
GRACE_S = 30.0  # long: the checks below show nothing waited for it


async def test_sigterm_drains_calls_ends_streams_and_exits_zero(tmp_path):
    port = free_port()
    env = dict(os.environ, HERALD_SEGMENT_ADDR=f"127.0.0.1:{port}", HERALD_API_SECRET=TEST_SECRET,
               HERALD_DATA_DIR=str(tmp_path), HERALD_SHUTDOWN_GRACE_S=str(GRACE_S))
    process = await asyncio.create_subprocess_exec(sys.executable, str(PROBE), env=env, cwd=os.getcwd())
    try:
        await wait_serving(port)
        async with client_channel(port) as channel, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as open_ch:
            health_updates = health_pb2_grpc.HealthStub(open_ch).Watch(health_pb2.HealthCheckRequest())
            assert (await health_updates.read()).status == health_pb2.HealthCheckResponse.SERVING

            ticks = channel.unary_stream(method("Ticks"), request_serializer=wrappers_pb2.StringValue.SerializeToString,
                                         response_deserializer=wrappers_pb2.StringValue.FromString)(
                wrappers_pb2.StringValue())
            await ticks.read()  # the stream is open
            hold = asyncio.ensure_future(channel.unary_unary(
                method("Hold"), request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString)(wrappers_pb2.StringValue(value="3")))
            holding = channel.unary_unary(method("Holding"), request_serializer=wrappers_pb2.StringValue.SerializeToString,
                                          response_deserializer=wrappers_pb2.StringValue.FromString)
            await eventually(lambda: holding(wrappers_pb2.StringValue()), lambda reply: reply.value == "1",
                             what="the Hold call in flight")

            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)

            assert (await health_updates.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stream_end = None
            try:
                while True:
                    item = await ticks.read()
                    if item is grpc.aio.EOF:
                        break
            except grpc.aio.AioRpcError as exc:
                stream_end = exc.code(), error_reason(exc)
            assert stream_end == (grpc.StatusCode.UNAVAILABLE, ("segment.herald", "SERVER_SHUTTING_DOWN"))
            assert (await hold).value == "held"
            assert time.monotonic() - sent_at < GRACE_S
            try:  # the open health watch ends too, rather than holding the server for the grace
                await health_updates.read()
                health_code = None
            except grpc.aio.AioRpcError as exc:
                health_code = exc.code()
            assert health_code == grpc.StatusCode.UNAVAILABLE

        assert await asyncio.wait_for(process.wait(), GRACE_S + 5) == 0
        assert time.monotonic() - sent_at < GRACE_S  # nothing held it for the whole grace period
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
