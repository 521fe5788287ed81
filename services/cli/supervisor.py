"""Runs the three services as child processes and keeps them running.

A child that exits is restarted with exponential backoff. One that exits (or never answers its
health check) MAX_FAILED_STARTS times in a row without ever becoming ready is not going to: the
supervisor stops the others and exits non-zero, having printed each cause (a child says why it
cannot start in one log line: its address is taken, its database unreachable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.auth import make_token
from services.kit.config import Settings

SERVICES = ("segment", "campaign", "delivery")
RESTART_FIRST_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
MAX_FAILED_STARTS = 4
READY_TIMEOUT_S = 60.0  # from spawn to SERVING (a first start may migrate a database)
TICK_S = 0.2


@dataclass
class Child:
    """One service's process and what the supervisor knows of it."""

    name: str
    addr: str
    process: subprocess.Popen | None = None
    spawned_at: float = 0.0
    ready: bool = False
    failed_starts: int = 0
    restart_at: float | None = None
    health: health_pb2_grpc.HealthStub | None = field(default=None, repr=False)

    def spawn(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", f"services.{self.name}_svc"], env=env)
        self.spawned_at, self.ready, self.restart_at = time.monotonic(), False, None

    def serving(self) -> bool:
        if self.health is None:
            self.health = health_pb2_grpc.HealthStub(grpc.insecure_channel(self.addr))
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)  # type: ignore[attr-defined]
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


class GaveUp(Exception):
    pass


def supervise(settings: Settings) -> int:
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HERALD_DATA_DIR=str(data_dir), HERALD_API_SECRET=settings.api_secret)
    stopping = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children = [Child(name, settings.addr(name)) for name in SERVICES]
    for child in children:
        child.spawn(env)
    announced = False
    try:
        while not stopping:
            time.sleep(TICK_S)
            for child in children:
                _tend(child, env)
            if not announced and all(child.ready for child in children):
                _announce(settings, data_dir)
                announced = True
    except GaveUp as exc:
        _say(str(exc))
        _stop_all(children, settings.shutdown_grace_s)
        return 1
    return _stop_all(children, settings.shutdown_grace_s)


def _tend(child: Child, env: dict[str, str]) -> None:
    """One look at a child: notes it ready, restarts it when due, gives up on one that never starts."""
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            child.spawn(env)
        return
    assert child.process is not None
    code = child.process.poll()
    if code is None:
        if not child.ready and child.serving():
            child.ready, child.failed_starts = True, 0
        elif not child.ready and now - child.spawned_at > READY_TIMEOUT_S:
            _say(f"{child.name} did not become ready within {READY_TIMEOUT_S:g} s; killing it")
            child.process.kill()
            child.process.wait()
            _schedule_restart(child, "did not become ready")
        return
    _schedule_restart(child, f"exited with {code}" + ("" if child.ready else " before it was ready"))


def _schedule_restart(child: Child, what: str) -> None:
    if not child.ready:
        child.failed_starts += 1
        if child.failed_starts >= MAX_FAILED_STARTS:
            raise GaveUp(f"{child.name} {what} {child.failed_starts} times in a row; giving up "
                         "(its last log line says why)")
    delay = min(RESTART_MAX_DELAY_S, RESTART_FIRST_DELAY_S * 2 ** max(0, child.failed_starts - 1))
    _say(f"{child.name} {what}; restarting in {delay:g} s")
    child.ready, child.restart_at = False, time.monotonic() + delay


def _say(line: str) -> None:
    print(f"herald: {line}", file=sys.stderr, flush=True)


def _stop_all(children: list[Child], grace_s: float) -> int:
    running = [child.process for child in children if child.process is not None]
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 5
    code = 0
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = code or process.returncode
    return code


def _bin(command: str) -> str:
    """The command in this environment's bin dir (`.venv/bin/herald`), as the reader can paste it."""
    path = Path(sys.prefix) / "bin" / command
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _announce(settings: Settings, data_dir: Path) -> None:
    token = make_token(settings.api_secret, "cli")
    lines = [f"herald: data dir {data_dir}"]
    lines += [f"herald: {name:8} {settings.addr(name)}" for name in SERVICES]
    lines += [
        f"herald: token   {token}",
        f"herald: try     {_bin('herald')} demo",
        f"herald: or      {_bin('grpcurl')} -plaintext {settings.campaign_addr} list",
    ]
    print("\n".join(lines), flush=True)
