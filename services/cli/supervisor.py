"""Runs the three services as child processes and keeps them running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from services.kit.auth import make_token
from services.kit.config import Settings
from services.kit.probes import wait_serving

SERVICES = ("segment", "campaign", "delivery")
RESTART_DELAY_S = 1.0


def _spawn(name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"services.{name}_svc"], env=env)


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
    children = {name: _spawn(name, env) for name in SERVICES}
    _wait_ready(settings, children)
    _announce(settings, data_dir)
    while not stopping:
        time.sleep(0.2)
        for name, child in children.items():
            if child.poll() is not None and not stopping:
                print(f"herald: {name} exited with {child.returncode}; restarting", file=sys.stderr, flush=True)
                time.sleep(RESTART_DELAY_S)
                children[name] = _spawn(name, env)
    return _stop_all(children, settings.shutdown_grace_s)


def _wait_ready(settings: Settings, children: dict[str, subprocess.Popen], timeout_s: float = 60.0) -> None:
    """Returns once every child answers its health check; says which did not (a child that
    exited, e.g. because its port was taken, is not mistaken for a server already there)."""
    async def wait_all() -> None:
        await asyncio.gather(*(wait_serving(settings.addr(name), timeout_s=timeout_s,
                                            # mypy infers no lambda with a default argument
                                            alive=lambda child=child: child.poll() is None)  # type: ignore[misc]
                               for name, child in children.items()))

    try:
        asyncio.run(wait_all())
    except (TimeoutError, RuntimeError) as exc:
        print(f"herald: {exc}", file=sys.stderr, flush=True)


def _stop_all(children: dict[str, subprocess.Popen], grace_s: float) -> int:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 5
    code = 0
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        code = code or child.returncode
    return code


def _announce(settings: Settings, data_dir: Path) -> None:
    token = make_token(settings.api_secret, "cli")
    lines = [f"herald: data dir {data_dir}"]
    lines += [f"herald: {name:8} {settings.addr(name)}" for name in SERVICES]
    lines += [
        f"herald: token   {token}",
        f"herald: try     grpcurl -plaintext -H 'authorization: Bearer {token}' "
        f"{settings.campaign_addr} list",
    ]
    print("\n".join(lines), flush=True)
