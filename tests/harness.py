"""Run Herald services in-process on port 0 and talk to them over real channels."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.config import Settings
from services.kit.server import RunningServer, Service, start_server

TEST_SECRET = "test-secret-please-ignore-0123456789abcdef"
# Given, as on PostgreSQL they must be (replicas cannot share a generated one): base64 of 32 bytes.
TEST_WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1wbGVhc2UtaWdub3Jl"
# The RPCs of the protos not built yet: the one list of them. Tests expect UNIMPLEMENTED from these
# and from no other, so an RPC that is built must leave this list, and one that answers
# UNIMPLEMENTED by mistake fails.
NOT_BUILT: set[str] = set()
# Every wait in a test ends by then. Generous: a pass returns as soon as it sees its state, and a
# loaded 2-core machine can be slow; a failure says what it saw last.
DEADLINE_S = 60.0


async def eventually(observe: Callable, until: Callable = bool, *, what: str = "the condition",
                     timeout_s: float = DEADLINE_S, interval_s: float = 0.02):
    """Polls `observe()` (sync or async) until `until(value)` holds and returns that value;
    past `timeout_s`, fails with the value it saw last."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = observe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s; last saw {value!r}")
        await asyncio.sleep(interval_s)


def test_settings(data_dir: Path, **overrides) -> Settings:
    values = dict(data_dir=Path(data_dir), api_secret=TEST_SECRET, webhook_secret=TEST_WEBHOOK_SECRET,
                  shutdown_grace_s=2.0,
                  segment_addr="127.0.0.1:0", campaign_addr="127.0.0.1:0", delivery_addr="127.0.0.1:0")
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # a helper, not a test


def violations(exc: grpc.aio.AioRpcError) -> list[str]:
    """Field names of the BadRequest detail of an INVALID_ARGUMENT error."""
    status = rpc_status.from_call(exc)  # the sync decoder: the aio one raises TypeError
    fields = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def client_channel(port: int, secret: str = TEST_SECRET, subject: str = "test") -> grpc.aio.Channel:
    """A channel to a local server carrying a valid bearer token."""
    return open_channel(f"127.0.0.1:{port}", token=make_token(secret, subject))


@asynccontextmanager
async def serving(service: Service, settings: Settings) -> AsyncIterator[RunningServer]:
    running = await start_server(service, settings, "127.0.0.1:0")
    try:
        yield running
    finally:
        await running.stop(0.5)


@dataclass
class System:
    """The three services running together, with a channel to each; more replicas of a service
    (`start_replica`) share its database."""

    settings: Settings
    servers: dict[str, RunningServer] = field(default_factory=dict)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    build_kwargs: dict[str, dict] = field(default_factory=dict)  # per service, e.g. {"campaign": {"clock": c}}
    replicas: list[RunningServer] = field(default_factory=list)

    def channel(self, name: str) -> grpc.aio.Channel:
        if name not in self.channels:
            self.channels[name] = client_channel(self.servers[name].port)
        return self.channels[name]

    def channel_to(self, running: RunningServer) -> grpc.aio.Channel:
        """A channel to one server (a replica), kept with the others."""
        key = f"port:{running.port}"
        if key not in self.channels:
            self.channels[key] = client_channel(running.port)
        return self.channels[key]

    async def restart(self, name: str) -> None:
        """Stops one service and starts it again on the same port and database."""
        await self.servers[name].stop(0.5)
        self.servers[name] = await _start(name, self.settings, **self.build_kwargs.get(name, {}))

    async def start_replica(self, name: str, **build_kwargs) -> RunningServer:
        """Starts another replica of a service on its database (and the system's settings), on a
        port of its own; stopped with the system."""
        kwargs = {**self.build_kwargs.get(name, {}), **build_kwargs}
        running = await _start(name, replace(self.settings, **{f"{name}_addr": "127.0.0.1:0"}), **kwargs)
        self.replicas.append(running)
        return running


async def _start(name: str, settings: Settings, **build_kwargs) -> RunningServer:
    from importlib import import_module

    build = import_module(f"services.{name}_svc.app").build
    addr = settings.addr(name)
    running = await start_server(build(settings, **build_kwargs), settings, addr)
    return running


@asynccontextmanager
async def serve_system(new_db_url, data_dir: Path, names=("segment", "delivery", "campaign"),
                       build_kwargs: dict[str, dict] | None = None, **overrides) -> AsyncIterator[System]:
    """Starts the named services (in dependency order) with fresh databases on free ports;
    `build_kwargs` go to a service's `build` (e.g. a campaign clock)."""
    settings = test_settings(data_dir, **overrides)
    for name in names:
        settings = replace(settings, **{f"{name}_db_url": await new_db_url(name)})
    system = System(settings, build_kwargs=dict(build_kwargs or {}))
    try:
        for name in names:
            running = await _start(name, replace(system.settings, **{f"{name}_addr": "127.0.0.1:0"}),
                                   **system.build_kwargs.get(name, {}))
            system.servers[name] = running
            system.settings = replace(system.settings, **{f"{name}_addr": f"127.0.0.1:{running.port}"})
        yield system
    finally:
        for channel in system.channels.values():
            await channel.close()
        for running in reversed(system.replicas):
            await running.stop(0.5)
        for running in reversed(list(system.servers.values())):
            await running.stop(0.5)


def error_reason(exc: grpc.aio.AioRpcError) -> tuple[str, str]:
    """(domain, reason) of an error's `google.rpc.ErrorInfo` detail; ("", "") when it has none."""
    status = rpc_status.from_call(exc)  # the sync decoder: the aio one raises TypeError
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.domain, info.reason
    return "", ""
