"""Readiness probes for processes that start Herald services (the CLI, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port for a child process to listen on: free now, not handed out before by this
    process, and below the kernel's ephemeral range — a port the kernel picked (bind to port 0)
    can be taken as the local end of some outgoing connection before the child binds it."""
    low = _ephemeral_low()
    if low - 1024 < 4_000:  # no room below the kernel's range (a system configured so): its pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port below {low} after 200 tries")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems start theirs higher


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
