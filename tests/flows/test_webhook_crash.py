"""At least once under kill -9: delivery_svc runs as a subprocess posting a campaign's events to
a slow webhook receiver, and is killed at random points of the dispatch, several rounds; every
event must reach the receiver in the end (repeats allowed, each with its stable X-Webhook-Id).

The seed is printed; `HERALD_CRASH_SEED=<seed>` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time

from harness import TEST_SECRET, TEST_WEBHOOK_SECRET, client_channel, eventually, serve_system
from services.kit.probes import free_port, wait_serving

from delivery.helpers import Stubs, campaign, start, upsert_users, wait_done
from delivery.receiver import Receiver, receiving

HOOK = "/hook"
RECIPIENTS = 400  # 800 events: channel.created and message.new each
ROUNDS = 3
ROUND_TIMEOUT_S = 120


def delivered_ids(receiver: Receiver) -> set[str]:
    return {r.headers["x-webhook-id"] for r in receiver.at(HOOK) if r.status < 300}


async def _spawn(env: dict) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.delivery_svc", env=env,
                                                stderr=asyncio.subprocess.DEVNULL)


async def test_webhook_dispatch_survives_kill_9_without_losing_an_event(new_db_url, tmp_path):
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    print(f"\nwebhook crash test seed: {seed} (replay with HERALD_CRASH_SEED={seed})")
    rng = random.Random(seed)
    port = free_port()
    expected = 2 * RECIPIENTS
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system, receiving() as receiver:
        receiver.delay_s = 0.004  # slower than the sending: dispatch lags behind it
        env = dict(os.environ, HERALD_DELIVERY_ADDR=f"127.0.0.1:{port}",
                   HERALD_SEGMENT_ADDR=system.settings.segment_addr,
                   HERALD_DELIVERY_DB_URL=await new_db_url("delivery"), HERALD_API_SECRET=TEST_SECRET,
                   HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
                   HERALD_DATA_DIR=str(tmp_path), HERALD_WEBHOOK_URL=f"{receiver.url}{HOOK}",
                   HERALD_WEBHOOK_CONCURRENCY=str(rng.choice([1, 4, 16])), HERALD_DELIVERY_BATCH_SIZE="100",
                   HERALD_LOG_LEVEL="WARNING", HERALD_SHUTDOWN_GRACE_S="1",
                   # PostgreSQL: the killed process's delivery lease runs out before the next one resumes it.
                   HERALD_LEASE_S="2")
        users = [f"user-{i:04d}" for i in range(RECIPIENTS)]
        async with client_channel(port) as delivery_channel:
            stubs = Stubs(system.channel("segment"), delivery_channel)
            await upsert_users(stubs.directory, ["sender", *users])
            process = await _spawn(env)
            try:
                await wait_serving(port, alive=lambda: process.returncode is None)
                await start(stubs, campaign("crash", user_ids=users))
                for round_ in range(ROUNDS):
                    got = len(delivered_ids(receiver))
                    target = got + rng.uniform(0.1, 0.5) * (expected - got)
                    give_up_at = time.monotonic() + ROUND_TIMEOUT_S
                    while len(delivered_ids(receiver)) < target:
                        assert process.returncode is None, "delivery_svc exited by itself"
                        assert time.monotonic() < give_up_at, f"no dispatch progress past {got} (seed {seed})"
                        await asyncio.sleep(0.002)
                    await asyncio.sleep(rng.uniform(0, 0.02))
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
                    print(f"round {round_}: killed with {len(delivered_ids(receiver))}/{expected} events received")
                    process = await _spawn(env)
                    await wait_serving(port, alive=lambda: process.returncode is None)
                await wait_done(stubs, "crash", timeout_s=120)
                await eventually(lambda: len(delivered_ids(receiver)), lambda n: n == expected, timeout_s=120,
                                 what=f"all {expected} events received (seed {seed})")
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await process.wait()
    bodies = {r.headers["x-webhook-id"]: json.loads(r.body) for r in receiver.at(HOOK) if r.status < 300}
    assert sorted(b["cid"] for b in bodies.values() if b["type"] == "message.new") == [
        f"messaging:{u}-sender" for u in users]
    assert sorted(b["cid"] for b in bodies.values() if b["type"] == "channel.created") == [
        f"messaging:{u}-sender" for u in users]
    repeats = len([r for r in receiver.at(HOOK) if r.status < 300]) - expected
    print(f"{repeats} events received more than once (sent again after a kill)")
