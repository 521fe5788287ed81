"""`herald serve` runs the three services as processes, restarts one that dies, stops them
together; `herald token` prints a token they accept; grpcurl works through reflection."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys

import psutil

from harness import TEST_SECRET, TEST_WEBHOOK_SECRET
from services.kit.auth import verify_authorization
from services.kit.config import load_or_create_secret
from services.cli.supervisor import MAX_FAILED_STARTS
from services.kit.probes import free_port, wait_serving
from services.kit.server import EXIT_CANNOT_START

SERVICES = ("segment", "campaign", "delivery")


def grpcurl() -> str:
    return shutil.which("grpcurl") or os.path.join(os.path.dirname(sys.executable), "grpcurl")


def _herald(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
            api_secret: str = "") -> subprocess.CompletedProcess:
    env = dict(env or os.environ)
    env.pop("HERALD_API_SECRET", None)
    if api_secret:
        env["HERALD_API_SECRET"] = api_secret
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)


def test_token_prints_a_token_for_the_data_dir_secret(tmp_path):
    secret = load_or_create_secret(tmp_path)  # as `herald serve` made it
    done = _herald("token", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    claims = verify_authorization(f"Bearer {done.stdout.strip()}", secret)
    assert claims["sub"] == "cli"


def test_token_never_invents_a_secret(tmp_path):
    """Run where no secret is, `herald token` says where it looked instead of signing with a new
    secret that the running services would refuse."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HERALD_DATA_DIR"}
    done = _herald("token", env=env, cwd=str(elsewhere))
    assert done.returncode == 2 and done.stdout == ""
    assert str(elsewhere / "var" / "api_secret") in done.stderr
    assert not (elsewhere / "var" / "api_secret").exists()


async def test_a_second_service_on_a_taken_address_refuses_to_start(tmp_path):
    """gRPC's default SO_REUSEPORT would let both serve, sharing calls between two secrets."""
    port = free_port()
    env = dict(os.environ, HERALD_SEGMENT_ADDR=f"127.0.0.1:{port}", HERALD_API_SECRET="x" * 32)
    for data_dir in ("a", "b"):
        (tmp_path / data_dir).mkdir()
    first = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.segment_svc",
                                                 env=dict(env, HERALD_DATA_DIR=str(tmp_path / "a")))
    try:
        await wait_serving(port, alive=lambda: first.returncode is None)
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.segment_svc", env=dict(env, HERALD_DATA_DIR=str(tmp_path / "b")),
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == EXIT_CANNOT_START, stderr.decode()
        assert f"cannot listen on 127.0.0.1:{port}" in stderr.decode()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()


def test_serve_on_postgresql_without_the_shared_secrets_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HERALD_WEBHOOK_SECRET"}
    env["HERALD_SEGMENT_DB_URL"] = f"postgresql+asyncpg://herald@127.0.0.1:{free_port()}/herald"
    done = _herald("serve", "--data-dir", str(tmp_path), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "herald: HERALD_API_SECRET and HERALD_WEBHOOK_SECRET must be set with a PostgreSQL database: "
        "replicas on different hosts cannot share a generated secret"]
    assert not (tmp_path / "api_secret").exists()


def test_serve_gives_up_on_a_service_that_cannot_start(tmp_path):
    """An unreachable database: the cause in one line per attempt, restarts with backoff, then a
    non-zero exit, and no banner claiming the services run."""
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ, **{f"HERALD_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in ports.items()},
               HERALD_SEGMENT_DB_URL=f"postgresql+asyncpg://herald:herald@127.0.0.1:{free_port()}/herald",
               HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET, HERALD_SHUTDOWN_GRACE_S="3")
    done = _herald("serve", "--data-dir", str(tmp_path), env=env, api_secret=TEST_SECRET)  # PostgreSQL: required
    assert done.returncode == 1, done.stderr
    assert "data dir" not in done.stdout
    causes = [line for line in done.stderr.splitlines() if '"cannot start"' in line]
    assert len(causes) == MAX_FAILED_STARTS and all("Connect" in line for line in causes), done.stderr
    assert "restarting in 1 s" in done.stderr and "restarting in 2 s" in done.stderr
    assert f"segment exited with {EXIT_CANNOT_START} before it was ready {MAX_FAILED_STARTS} times" in done.stderr


async def test_serve_runs_restarts_and_stops_the_three_services(tmp_path):
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ, **{f"HERALD_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in ports.items()},
               HERALD_SHUTDOWN_GRACE_S="3")
    env.pop("HERALD_API_SECRET", None)
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "serve", "--data-dir", str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE)
    try:
        for port in ports.values():
            await wait_serving(port)
        banner = (await serve.stdout.readline()).decode()
        assert "data dir" in banner

        listed = subprocess.run([grpcurl(), "-plaintext", f"127.0.0.1:{ports['campaign']}", "list"],
                                check=True, capture_output=True, text=True).stdout
        assert "herald.campaign.v1.CampaignService" in listed

        token = _herald("token", "--data-dir", str(tmp_path)).stdout.strip()
        called = subprocess.run([grpcurl(), "-plaintext", "-H", f"authorization: Bearer {token}", "-d",
                                 '{"campaign_id": "nope"}', f"127.0.0.1:{ports['delivery']}",
                                 "herald.delivery.v1.DeliveryService/GetDelivery"], capture_output=True, text=True)
        assert "Unauthenticated" not in called.stderr + called.stdout

        children = psutil.Process(serve.pid).children()
        assert len(children) == 3
        victim = next(c for c in children if "segment_svc" in " ".join(c.cmdline()))
        victim.kill()
        await asyncio.sleep(1.5)
        await wait_serving(ports["segment"])

        serve.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.wait(), 20) == 0
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
