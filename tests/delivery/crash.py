"""delivery_svc as a process a test kills with SIGKILL mid-campaign (tests/flows/test_delivery_crash.py,
tests/flows/test_usage.py): its environment, starting it, reading a delivery's checkpoint from its
database, and the kill once it has handled a given number of recipients."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from harness import TEST_SECRET, TEST_WEBHOOK_SECRET
from herald.campaign.v1 import campaign_pb2

ROUND_TIMEOUT_S = 120  # a round that makes no progress for this long fails instead of hanging


def delivery_env(*, port: int, segment_addr: str, db_url: str, data_dir: Path, batch_size: int,
                 **extra: str) -> dict[str, str]:
    """The environment of `python -m services.delivery_svc` on `port` with its database at `db_url`."""
    return dict(os.environ, HERALD_DELIVERY_ADDR=f"127.0.0.1:{port}", HERALD_SEGMENT_ADDR=segment_addr,
                HERALD_DELIVERY_DB_URL=db_url, HERALD_API_SECRET=TEST_SECRET, HERALD_DATA_DIR=str(data_dir),
                HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET, HERALD_DELIVERY_BATCH_SIZE=str(batch_size),
                HERALD_LOG_LEVEL="WARNING", HERALD_SHUTDOWN_GRACE_S="1",
                # PostgreSQL: the killed process's delivery lease runs out before the next one resumes it.
                HERALD_LEASE_S="2", **extra)


async def spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.delivery_svc", env=env,
                                                stderr=asyncio.subprocess.DEVNULL)


async def checkpoint(engine: AsyncEngine, campaign_id: str) -> tuple[int, int]:
    """(recipients handled, status) of the delivery as committed."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text(
            "SELECT sent + skipped + failed, status FROM deliveries WHERE campaign_id = :id"),
            {"id": campaign_id})).one()
    return row[0], row[1]


async def kill_once_handled(process: asyncio.subprocess.Process, observer: AsyncEngine, campaign_id: str,
                            target: float, *, jitter_s: float, what: str = "") -> tuple[int, int]:
    """Kills `process` with SIGKILL once its delivery has handled `target` recipients (or ended),
    `jitter_s` later; returns (handled, status) as committed when it died."""
    give_up_at = time.monotonic() + ROUND_TIMEOUT_S
    while True:
        handled, status = await checkpoint(observer, campaign_id)
        if handled >= target or status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
            break
        assert process.returncode is None, "delivery_svc exited by itself"
        assert time.monotonic() < give_up_at, f"no progress past {handled} recipients {what}"
        await asyncio.sleep(0.003)
    await asyncio.sleep(jitter_s)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    return await checkpoint(observer, campaign_id)
