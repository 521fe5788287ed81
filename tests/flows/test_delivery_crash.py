"""Exactly once under kill -9: delivery_svc runs as a subprocess that is killed at random points
of a campaign and restarted, several rounds; it must resume by itself and end with every
recipient messaged once, none missing, and stats equal to a clean run's.

The seed is printed; `HERALD_CRASH_SEED=<seed>` replays a run. The default variant (a few
thousand recipients, 3 rounds) runs in the normal suite; the slow one takes 20,000 recipients
(`HERALD_CRASH_RECIPIENTS`, `HERALD_CRASH_ROUNDS` override both).
"""

from __future__ import annotations

import os
import random
import signal

import pytest

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from harness import client_channel, serve_system
from services.kit.probes import free_port, wait_serving
from services.kit.db import make_engine

from delivery.crash import delivery_env, kill_once_handled, spawn
from delivery.helpers import (Stubs, all_messages, all_recipients, campaign, get, start, struct, upsert_users,
                              user_segment, wait_done)

GHOSTS = 17  # unknown users in the segment: skipped
LONG_BIO_EVERY = 250  # every 250th user's text is too long: failed


async def _crash_loop(new_db_url, tmp_path, recipients: int, rounds: int) -> None:
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    print(f"\ncrash test seed: {seed} (replay with HERALD_CRASH_SEED={seed}); {recipients} recipients, {rounds} rounds")
    rng = random.Random(seed)
    delivery_url = await new_db_url("delivery")
    port = free_port()
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system:
        env = delivery_env(port=port, segment_addr=system.settings.segment_addr, db_url=delivery_url,
                           data_dir=tmp_path, batch_size=rng.choice([100, 250, 500]))
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
                    process = await spawn(env)
                    if round_ == 0:
                        await wait_serving(port, alive=lambda: process.returncode is None)
                        await start(stubs, snapshot)
                    # The restarted process resumes by itself as it starts. Kill it once it has
                    # written a random share of what is left (watching its database), plus jitter.
                    target = handled + rng.uniform(0.05, 0.6) * (total - handled)
                    handled, status = await kill_once_handled(process, observer, "crash", target,
                                                              jitter_s=rng.uniform(0, 0.03),
                                                              what=f"of {total} (seed {seed})")
                    print(f"round {round_}: killed with {handled}/{total} recipients handled (status {status})")
                    if status != campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                        break
                process = await spawn(env)  # the last one runs to the end by itself
                await wait_serving(port, alive=lambda: process.returncode is None)
                done = await wait_done(stubs, "crash", timeout_s=120)
            finally:
                await observer.dispose()
                if process is not None and process.returncode is None:
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
            # Once more, against a fresh process: nothing moves after completion.
            process = await spawn(env)
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
