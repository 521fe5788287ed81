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

from services.kit.auth import verify_authorization
from services.kit.config import load_or_create_secret
from services.kit.probes import free_port, wait_serving

SERVICES = ("segment", "campaign", "delivery")


def grpcurl() -> str:
    return shutil.which("grpcurl") or os.path.join(os.path.dirname(sys.executable), "grpcurl")


def test_token_prints_a_token_for_the_data_dir_secret(tmp_path):
    out = subprocess.run([sys.executable, "-m", "services.cli", "token", "--data-dir", str(tmp_path)],
                         check=True, capture_output=True, text=True).stdout.strip()
    claims = verify_authorization(f"Bearer {out}", load_or_create_secret(tmp_path))
    assert claims["sub"] == "cli"


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

        token = subprocess.run([sys.executable, "-m", "services.cli", "token", "--data-dir", str(tmp_path)],
                               check=True, capture_output=True, text=True).stdout.strip()
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
