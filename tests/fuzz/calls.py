"""Every RPC of gen/, found from the service descriptors (a new RPC is fuzzed without a line
here), and one call of any of them ended with the status it got."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import herald
from google.protobuf.descriptor import MethodDescriptor

UNARY_DEADLINE_S = 30.0  # a unary call answers within it, even on a loaded machine
# A response stream that sent its headers is given this long to send a first response or end;
# still open after it, it is a valid watch or subscription waiting for news.
STREAM_GRACE_S = 0.1
OPEN = "OPEN"


@dataclass(frozen=True)
class Rpc:
    server: str  # the service process that serves it: segment, campaign or delivery
    method: MethodDescriptor
    stub_class: type

    @property
    def name(self) -> str:
        return f"{self.method.containing_service.full_name}/{self.method.name}"


def every_rpc() -> list[Rpc]:
    rpcs = []
    root = Path(next(iter(herald.__path__)))
    for path in sorted(root.rglob("*_pb2.py")):
        module_name = ".".join(("herald", *path.relative_to(root).with_suffix("").parts))
        module = importlib.import_module(module_name)
        for service in module.DESCRIPTOR.services_by_name.values():
            stub_class = getattr(importlib.import_module(f"{module_name}_grpc"), f"{service.name}Stub")
            server = service.full_name.split(".")[1]
            rpcs += [Rpc(server, method, stub_class) for method in service.methods]
    return rpcs


async def call(rpc: Rpc, channel: grpc.aio.Channel, request: Any) -> str:
    """The name of the status the call ended with, or OPEN for a response stream that answered
    and stays open. A client-streaming RPC takes a list of requests."""
    method = getattr(rpc.stub_class(channel), rpc.method.name)
    try:
        if rpc.method.server_streaming:
            return await _first_of_stream(method(request, timeout=UNARY_DEADLINE_S))
        await method(iter(request) if rpc.method.client_streaming else request, timeout=UNARY_DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return grpc.StatusCode.OK.name


async def _first_of_stream(stream: grpc.aio.UnaryStreamCall) -> str:
    """Waits for the headers (within the deadline), then reads one response, and cancels."""
    try:
        await stream.initial_metadata()
        if await asyncio.wait_for(stream.read(), STREAM_GRACE_S) is grpc.aio.EOF:
            return (await stream.code()).name
        return OPEN
    except asyncio.TimeoutError:
        return OPEN
    finally:
        stream.cancel()
