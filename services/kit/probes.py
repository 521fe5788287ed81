"""Readiness probes for processes that start Herald services (the CLI, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    """A loopback port that was free a moment ago (for a child process to listen on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_serving(addr: str | int, *, timeout_s: float = 30.0,
                       alive: Callable[[], bool] = lambda: True) -> None:
    """Waits until the gRPC health service at `addr` ("host:port", or a loopback port) answers
    SERVING; raises TimeoutError after `timeout_s`, RuntimeError when `alive()` turns false."""
    target = f"127.0.0.1:{addr}" if isinstance(addr, int) else addr
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if not alive():
                raise RuntimeError(f"the service for {target} exited while starting")
            try:
                # types-grpcio-health-checking declares HealthStub without its methods.
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} did not become SERVING within {timeout_s} s")
            await asyncio.sleep(0.05)
