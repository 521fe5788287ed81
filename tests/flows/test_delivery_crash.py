"""Exactly once under kill -9: delivery_svc runs as a subprocess that is killed at random points
of a campaign and restarted, several rounds; it must resume by itself and end with every
recipient messaged once, none missing, and stats equal to a clean run's.

The seed is printed; `HERALD_CRASH_SEED=<seed>` replays a run. The default variant (a few
thousand recipients, 3 rounds) runs in the normal suite; the slow one takes 20,000 recipients
(`HERALD_CRASH_RECIPIENTS`, `HERALD_CRASH_ROUNDS` override both).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time

import pytest
import sqlalchemy as sa

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from harness import TEST_SECRET, TEST_WEBHOOK_SECRET, client_channel, serve_system
from services.kit.probes import free_port, wait_serving
from services.kit.db import make_engine

from delivery.helpers import (Stubs, all_messages, all_recipients, campaign, get, start, struct, upsert_users,
                              user_segment, wait_done)

GHOSTS = 17  # unknown users in the segment: skipped
LONG_BIO_EVERY = 250  # every 250th user's text is too long: failed
ROUND_TIMEOUT_S = 120  # a round that makes no progress for this long fails instead of hanging


async def _spawn(env: dict) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.delivery_svc", env=env,
                                                stderr=asyncio.subprocess.DEVNULL)


async def _checkpoint(engine) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text(
            "SELECT sent + skipped + failed, status FROM deliveries WHERE campaign_id = 'crash'"))).one()
    return row[0], row[1]


async def _crash_loop(new_db_url, tmp_path, recipients: int, rounds: int) -> None:
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    print(f"\ncrash test seed: {seed} (replay with HERALD_CRASH_SEED={seed}); {recipients} recipients, {rounds} rounds")
    rng = random.Random(seed)
    delivery_url = await new_db_url("delivery")
    port = free_port()
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system:
        env = dict(os.environ, HERALD_DELIVERY_ADDR=f"127.0.0.1:{port}", HERALD_SEGMENT_ADDR=system.settings.segment_addr,
                   HERALD_DELIVERY_DB_URL=delivery_url, HERALD_API_SECRET=TEST_SECRET, HERALD_DATA_DIR=str(tmp_path),
                   HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
                   HERALD_DELIVERY_BATCH_SIZE=str(rng.choice([100, 250, 500])), HERALD_LOG_LEVEL="WARNING",
                   HERALD_SHUTDOWN_GRACE_S="1",
                   # PostgreSQL: the killed process's delivery lease runs out before the next one resumes it.
                   HERALD_LEASE_S="2")
        users = [f"user-{i:06d}" for i in range(recipients)]
        directory_channel = system.channel("segment")
        async with client_channel(port) as delivery_channel:
            stubs = Stubs(directory_channel, delivery_channel)
            await upsert_users(stubs.directory, ["sender", *users])
            long_bios = users[::LONG_BIO_EVERY]
            await stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
                directory_pb2.User(id=u, name="Verbose", custom=struct({"bio": "b" * 5000})) for u in long_bios]))
            ghosts = [f"ghost-{i:03d}" for i in range(GHOSTS)]
            segment_id = await user_segment(stubs.segments, [*users, *ghosts])
            snapshot = campaign("crash", segment_ids=[segment_id],
                                text="Hi {{ receiver.name }}{% if receiver.custom.bio %}: {{ receiver.custom.bio }}"
                                     "{% endif %}")

            total = recipients + GHOSTS
            observer = make_engine(delivery_url)  # reads the checkpoint between rounds
            process = None
            try:
                handled = 0
                for round_ in range(rounds):
                    process = await _spawn(env)
                    if round_ == 0:
                        await wait_serving(port, alive=lambda: process.returncode is None)
                        await start(stubs, snapshot)
                    # The restarted process resumes by itself as it starts. Kill it once it has
                    # written a random share of what is left (watching its database), plus jitter.
                    target = handled + rng.uniform(0.05, 0.6) * (total - handled)
                    give_up_at = time.monotonic() + ROUND_TIMEOUT_S
                    while True:
                        handled, status = await _checkpoint(observer)
                        if handled >= target or status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                            break
                        assert process.returncode is None, "delivery_svc exited by itself"
                        assert time.monotonic() < give_up_at, f"no progress past {handled}/{total} (seed {seed})"
                        await asyncio.sleep(0.003)
                    await asyncio.sleep(rng.uniform(0, 0.03))
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
                    handled, status = await _checkpoint(observer)
                    print(f"round {round_}: killed with {handled}/{total} recipients handled (status {status})")
                    if status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                        break
                process = await _spawn(env)  # the last one runs to the end by itself
                await wait_serving(port, alive=lambda: process.returncode is None)
                done = await wait_done(stubs, "crash", timeout_s=120)
            finally:
                await observer.dispose()
                if process is not None and process.returncode is None:
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
            # Once more, against a fresh process: nothing moves after completion.
            process = await _spawn(env)
            try:
                await wait_serving(port, alive=lambda: process.returncode is None)
                await _check(stubs, done, users, ghosts, long_bios, seed)
            finally:
                process.send_signal(signal.SIGTERM)
                await process.wait()


async def _check(stubs, done, users, ghosts, long_bios, seed) -> None:
    msg = f"(seed {seed})"
    assert done.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED, msg
    sent_users = set(users) - set(long_bios)
    log = await all_recipients(stubs, {"campaign_id": "crash"})
    assert len(log) == len({r.target_id for r in log}) == len(users) + len(ghosts), msg
    by_status: dict[int, set[str]] = {}
    for outcome in log:
        by_status.setdefault(outcome.status, set()).add(outcome.target_id)
    assert by_status[delivery_pb2.RECIPIENT_STATUS_SENT] == sent_users, msg
    assert by_status[delivery_pb2.RECIPIENT_STATUS_SKIPPED] == set(ghosts), msg
    assert by_status[delivery_pb2.RECIPIENT_STATUS_FAILED] == set(long_bios), msg

    messages = await all_messages(stubs, {"created_by_campaign_id": "crash"})
    assert len(messages) == len({m.id for m in messages}) == len(sent_users), msg  # no duplicate, none missing
    assert {m.cid for m in messages} == {f"messaging:{u}-sender" for u in sent_users}, msg
    message_ids = {r.message_id for r in log if r.status == delivery_pb2.RECIPIENT_STATUS_SENT}
    assert message_ids == {m.id for m in messages}, msg

    # Exactly the stats of a clean run: every user's channel created once (failed ones too).
    final = await get(stubs, "crash")
    s = final.stats
    assert (s.recipients_total, s.recipients_skipped, s.recipients_failed, s.stats_messages_sent,
            s.stats_users_sent, s.stats_channels_created, s.progress) == (
        len(users) + len(ghosts), len(ghosts), len(long_bios), len(sent_users), len(sent_users), len(users), 1.0), msg


def _size(default: int) -> int:
    return int(os.environ.get("HERALD_CRASH_RECIPIENTS") or default)


async def test_delivery_survives_kill_9_at_random_points(new_db_url, tmp_path):
    await _crash_loop(new_db_url, tmp_path, _size(3000), int(os.environ.get("HERALD_CRASH_ROUNDS") or 3))


@pytest.mark.slow
async def test_delivery_survives_kill_9_at_random_points_in_a_20000_recipient_campaign(new_db_url, tmp_path):
    await _crash_loop(new_db_url, tmp_path, _size(20_000), int(os.environ.get("HERALD_CRASH_ROUNDS") or 6))
