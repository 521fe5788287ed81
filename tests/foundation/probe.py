"""A Herald `Service` whose handlers the tests control, served by the real kit lifecycle.

Run as a process (`python tests/foundation/probe.py`) it is exactly what `python -m
services.<name>_svc` runs, with handlers that hold a call open or stream forever.
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from google.protobuf import struct_pb2, wrappers_pb2
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from services.kit import errors
from services.kit.config import Settings
from services.kit.interceptors import current_claims
from services.kit.server import Service, run_service

SERVICE = "herald.test.v1.ProbeService"


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


async def _second_connection_of_a_pool_of_one() -> None:
    """Raises the pool's own TimeoutError: one connection, held while a second is asked for."""
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=AsyncAdaptedQueuePool, pool_size=1,
                                 max_overflow=0, pool_timeout=0.01)
    try:
        async with engine.connect(), engine.connect():
            pass
    finally:
        await engine.dispose()


class ProbeService(Service):
    name = "segment"  # listens on HERALD_SEGMENT_ADDR

    def __init__(self, settings: Settings | None = None) -> None:
        self.unavailable_left = 0
        self.holding = 0  # Hold calls in flight
        self.echoed = 0  # Echo calls answered

    def service_names(self) -> list[str]:
        return [SERVICE]

    def register(self, server: grpc.aio.Server) -> None:
        string = dict(request_deserializer=wrappers_pb2.StringValue.FromString,
                      response_serializer=wrappers_pb2.StringValue.SerializeToString)
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo, **string),
            "Hold": grpc.unary_unary_rpc_method_handler(self.hold, **string),
            "Holding": grpc.unary_unary_rpc_method_handler(self.holding_now, **string),
            "Ticks": grpc.unary_stream_rpc_method_handler(self.ticks, **string),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail, **string),
            "Flaky": grpc.unary_unary_rpc_method_handler(self.flaky, **string),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    async def echo(self, request, context):
        self.echoed += 1
        return wrappers_pb2.StringValue(value=f"{request.value}|{current_claims.get().get('sub', '')}")

    async def hold(self, request, context):
        """Answers after the number of seconds in the request."""
        self.holding += 1
        try:
            await asyncio.sleep(float(request.value))
        finally:
            self.holding -= 1
        return wrappers_pb2.StringValue(value="held")

    async def holding_now(self, request, context):
        return wrappers_pb2.StringValue(value=str(self.holding))

    async def ticks(self, request, context):
        n = 0
        while True:
            yield wrappers_pb2.StringValue(value=str(n))
            n += 1
            await asyncio.sleep(0.05)

    async def fail(self, request, context):
        kind = request.value
        if kind == "invalid":
            raise errors.InvalidArgument(violations=[
                errors.FieldViolation("user_ids[12]", "must not be empty"),
                errors.FieldViolation("message_template.text", "is required")])
        if kind == "not_found":
            raise errors.NotFound("campaign c1 does not exist", reason="CAMPAIGN_NOT_FOUND")
        if kind == "exhausted":
            raise errors.ResourceExhausted("send rate exceeded", reason="RATE_LIMITED", retry_after_s=1.5)
        if kind == "unimplemented":
            raise NotImplementedError
        if kind == "bug":
            raise ValueError("secret internals: /etc/passwd")
        if kind == "pool_busy":
            await _second_connection_of_a_pool_of_one()
        return struct_pb2.Value()

    async def flaky(self, request, context):
        """UNAVAILABLE for the first N calls (N set by the first request), then OK."""
        if self.unavailable_left > 0:
            self.unavailable_left -= 1
            raise errors.Unavailable("try again", reason="DEPENDENCY_UNAVAILABLE")
        return wrappers_pb2.StringValue(value="ok")


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    run_service("segment", ProbeService)
