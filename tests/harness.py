"""Run Herald services in-process on port 0 and talk to them over real channels."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.config import Settings
from services.kit.server import RunningServer, Service, start_server

TEST_SECRET = "test-secret-please-ignore-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]
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


# What a test that serves metrics sets (`metrics_on()`): each service on a free port.
METRICS_ON = {f"{name}_metrics_addr": "127.0.0.1:0" for name in ("segment", "campaign", "delivery")}


def test_settings(data_dir: Path, **overrides) -> Settings:
    """Services on free ports with the test secrets; metrics off (the default ports would be taken
    by the first service of a process full of them), unless a test passes METRICS_ON."""
    values = dict(data_dir=Path(data_dir), api_secret=TEST_SECRET, webhook_secret=TEST_WEBHOOK_SECRET,
                  shutdown_grace_s=2.0,
                  segment_addr="127.0.0.1:0", campaign_addr="127.0.0.1:0", delivery_addr="127.0.0.1:0",
                  segment_metrics_addr="off", campaign_metrics_addr="off", delivery_metrics_addr="off")
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
    tracer_provider: object = None
    build_kwargs: dict[str, dict] = field(default_factory=dict)  # per service, e.g. {"campaign": {"clock": c}}
    replicas: list[RunningServer] = field(default_factory=list)

    def metrics_url(self, name: str) -> str:
        port = self.servers[name].metrics_port
        assert port is not None, f"{name} serves no metrics: start the system with **METRICS_ON"
        return f"http://127.0.0.1:{port}/metrics"

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
        self.servers[name] = await _start(name, self.settings, self.tracer_provider, **self.build_kwargs.get(name, {}))

    async def start_replica(self, name: str, **build_kwargs) -> RunningServer:
        """Starts another replica of a service on its database (and the system's settings), on a
        port of its own; stopped with the system."""
        kwargs = {**self.build_kwargs.get(name, {}), **build_kwargs}
        running = await _start(name, replace(self.settings, **{f"{name}_addr": "127.0.0.1:0"}),
                               self.tracer_provider, **kwargs)
        self.replicas.append(running)
        return running


async def _start(name: str, settings: Settings, tracer_provider=None, **build_kwargs) -> RunningServer:
    from importlib import import_module

    build = import_module(f"services.{name}_svc.app").build
    addr = settings.addr(name)
    running = await start_server(build(settings, tracer_provider=tracer_provider, **build_kwargs), settings, addr)
    return running


@contextmanager
def sqlite_write_lock(db_url: str) -> Iterator[None]:
    """Holds SQLite's write lock from a connection of its own (as another process would) for the
    block; skips the test on PostgreSQL, whose writers do not wait for one writer."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's one writer: PostgreSQL writers do not wait for each other here")
    holder = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


@asynccontextmanager
async def serve_system(new_db_url, data_dir: Path, names=("segment", "delivery", "campaign"),
                       tracer_provider=None, build_kwargs: dict[str, dict] | None = None,
                       **overrides) -> AsyncIterator[System]:
    """Starts the named services (in dependency order) with fresh databases on free ports; with
    `tracer_provider` (an OpenTelemetry SDK one) they trace into it; `build_kwargs` go to a
    service's `build` (e.g. a campaign clock)."""
    settings = test_settings(data_dir, **overrides)
    for name in names:
        settings = replace(settings, **{f"{name}_db_url": await new_db_url(name)})
    system = System(settings, tracer_provider=tracer_provider, build_kwargs=dict(build_kwargs or {}))
    try:
        for name in names:
            running = await _start(name, replace(system.settings, **{f"{name}_addr": "127.0.0.1:0"}),
                                   tracer_provider, **system.build_kwargs.get(name, {}))
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


# What would make a `herald` command think it draws on a terminal, or find another secret.
_CLI_ENV_DROPPED = ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "HERALD_DATA_DIR")


def cli_env(system: System, **extra: str) -> dict[str, str]:
    """The environment of a `herald` command run against `system`: its addresses and secret."""
    settings = system.settings
    env = {name: value for name, value in os.environ.items() if name not in _CLI_ENV_DROPPED}
    env.update(HERALD_API_SECRET=TEST_SECRET, HERALD_SEGMENT_ADDR=settings.segment_addr,
               HERALD_CAMPAIGN_ADDR=settings.campaign_addr, HERALD_DELIVERY_ADDR=settings.delivery_addr, **extra)
    return env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_herald(system: System, *args: str, env: dict[str, str] | None = None,
                       **options) -> asyncio.subprocess.Process:
    """Starts `python -m services.cli ARGS` (the `herald` command) against `system`, from the
    repository root, stdout and stderr piped unless `options` say otherwise. SIGINT is at its
    default in the child, so a test can press Ctrl-C even where pytest runs with it ignored."""
    options.setdefault("stdout", asyncio.subprocess.PIPE)
    options.setdefault("stderr", asyncio.subprocess.PIPE)
    options.setdefault("stdin", asyncio.subprocess.DEVNULL)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # a child inherits that; a handler it does not
        options.setdefault("preexec_fn", _default_sigint)
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args,
                                                env=cli_env(system) if env is None else env, cwd=REPO, **options)


@dataclass
class Ran:
    """A finished `herald` command: its exit status and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> list:
        """stdout's JSON lines."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


async def run_herald(system: System, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                     timeout_s: float = DEADLINE_S) -> Ran:
    """Runs `herald ARGS` against `system` to its end; past `timeout_s`, kills it and fails with
    what it printed."""
    process = await start_herald(system, *args, env=env,
                                 stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL)
    try:
        out, err = await asyncio.wait_for(process.communicate(None if input is None else input.encode()), timeout_s)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"herald {' '.join(args)}: still running after {timeout_s:g} s; "
                             f"printed {out.decode()!r}, {err.decode()!r}") from None
    return Ran(process.returncode, out.decode(), err.decode())
