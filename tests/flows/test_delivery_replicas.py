"""Two delivery replicas as real processes on one PostgreSQL database (DESIGN §10.4): they share
a campaign by partitions of its audience, and its webhooks by the shards of the event log; a
replica killed with kill -9 and not restarted loses both after HERALD_LEASE_S, and the other
finishes the campaign and the dispatch from their checkpoints.
A replica restarted while the other sends does not take the partition it holds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from conftest import PG_ADMIN_URL
from harness import TEST_SECRET, TEST_WEBHOOK_SECRET, client_channel, eventually, serve_system
from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.kit.db import make_engine
from services.kit.probes import free_port, wait_serving

from delivery.helpers import Stubs, all_messages, all_recipients, campaign, start, upsert_users, user_segment, wait_done
from delivery.receiver import Receiver, receiving

pytestmark = pytest.mark.skipif(not PG_ADMIN_URL, reason="replicas share a PostgreSQL database (SQLite: one replica)")

HOOK = "/hook"
RATE, BATCH = 2000, 200
GHOSTS = 7  # unknown users in the segment: skipped
WEBHOOKS_EACH = 100  # POSTs each replica makes before one is killed
IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


class Replica:
    """One delivery_svc process on its own port (and metrics port), sharing the database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.env = dict(env, HERALD_DELIVERY_ADDR=f"127.0.0.1:{self.port}",
                        HERALD_DELIVERY_METRICS_ADDR=f"127.0.0.1:{self.metrics_port}")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.delivery_svc", env=self.env, stderr=asyncio.subprocess.DEVNULL)
        await wait_serving(self.port, alive=lambda: process.returncode is None)

    async def end(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)
            await self.process.wait()

    async def recipients_written(self) -> float:
        """Recipients whose batches this process committed (its metrics)."""
        return await self._counted("herald_delivery_recipients_total")

    async def webhooks_attempted(self) -> float:
        """Webhook POSTs this process made (its metrics)."""
        return await self._counted("herald_dispatch_attempts_total", destination="webhook")

    async def _counted(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        return sum(s.value for family in text_string_to_metric_families(response.text) for s in family.samples
                   if s.name == name and labels.items() <= s.labels.items())


def _env(system, delivery_url: str, tmp_path, **extra: str) -> dict[str, str]:
    return dict(os.environ, HERALD_SEGMENT_ADDR=system.settings.segment_addr, HERALD_DELIVERY_DB_URL=delivery_url,
                HERALD_API_SECRET=TEST_SECRET, HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
                HERALD_DATA_DIR=str(tmp_path), HERALD_LOG_LEVEL="WARNING", HERALD_SHUTDOWN_GRACE_S="1", **extra)


async def _handled(engine, campaign_id: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT sent + skipped + failed, status FROM deliveries "
                                          "WHERE campaign_id = :c"), {"c": campaign_id})).one()
    return row[0], row[1]


def _webhook_ids(receiver: Receiver) -> list[str]:
    return [r.headers["x-webhook-id"] for r in receiver.at(HOOK) if r.status < 300]


async def _check_exactly_once(stubs: Stubs, done, campaign_id: str, users: list[str], ghosts: list[str]) -> None:
    assert done.status == COMPLETED, done
    log = await all_recipients(stubs, {"campaign_id": campaign_id})
    assert len(log) == len({r.target_id for r in log}) == len(users) + len(ghosts)
    assert {r.target_id for r in log if r.status == delivery_pb2.RECIPIENT_STATUS_SENT} == set(users)
    assert {r.target_id for r in log if r.status == delivery_pb2.RECIPIENT_STATUS_SKIPPED} == set(ghosts)
    messages = await all_messages(stubs, {"created_by_campaign_id": campaign_id}, limit=1000)
    assert len(messages) == len({m.id for m in messages}) == len(users)  # one message per recipient
    s = done.stats  # a clean run's stats
    assert (s.recipients_total, s.recipients_skipped, s.recipients_failed, s.stats_messages_sent,
            s.stats_users_sent, s.stats_channels_created, s.progress) == (
        len(users) + len(ghosts), len(ghosts), 0, len(users), len(users), len(users), 1.0)


async def test_both_replicas_dispatch_a_campaign_s_webhooks_and_a_killed_one_s_shards_pass_to_the_other(
        new_db_url, tmp_path):
    users = [f"user-{i:04d}" for i in range(3000)]
    ghosts = [f"ghost-{i}" for i in range(GHOSTS)]
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system, receiving() as receiver:
        delivery_url = await new_db_url("delivery")
        # Paced (3,000 recipients take ~5 s): the kill lands mid-way on any machine.
        env = _env(system, delivery_url, tmp_path, HERALD_LEASE_S="2", HERALD_MAX_SEND_RATE="600",
                   HERALD_DELIVERY_BATCH_SIZE="100", HERALD_WEBHOOK_URL=f"{receiver.url}{HOOK}")
        a, b = Replica(env), Replica(env)
        observer = make_engine(delivery_url)
        try:
            await a.start()  # first: it takes every shard of the dispatch, then gives half to B
            await b.start()
            async with client_channel(a.port) as to_a, client_channel(b.port) as to_b:
                on_a, on_b = Stubs(system.channel("segment"), to_a), Stubs(system.channel("segment"), to_b)
                await upsert_users(on_a.directory, ["sender", *users])
                segment_id = await user_segment(on_a.segments, [*users, *ghosts])
                await start(on_a, campaign("shared", segment_ids=[segment_id]))
                total = len(users) + len(ghosts)
                # Each replica posts its shards' events (half each); A, which sends the campaign,
                # keeps its dispatch to a tenth of its time until the sending ends, so B goes faster.
                posted = await eventually(lambda: asyncio.gather(a.webhooks_attempted(), b.webhooks_attempted()),
                                          lambda ab: min(ab) >= WEBHOOKS_EACH, timeout_s=60, interval_s=0.1,
                                          what=f"both replicas posting {WEBHOOKS_EACH} webhooks or more")
                await a.end(signal.SIGKILL)  # and not restarted
                before_kill = _webhook_ids(receiver)
                handled, status = await _handled(observer, "shared")
                expected = 2 * len(users)  # channel.created and message.new each
                assert len(set(before_kill)) < expected, "killed mid-dispatch"
                # While both replicas ran, each posted its own shards: no webhook id twice.
                assert len(before_kill) == len(set(before_kill))

                done = await wait_done(on_b, "shared", timeout_s=120)
                await _check_exactly_once(on_b, done, "shared", users, ghosts)
                assert await b.recipients_written() >= total - handled  # B sent the rest

                await eventually(lambda: len(set(_webhook_ids(receiver))), lambda n: n >= expected, timeout_s=120,
                                 what=f"all {expected} events received")
        finally:
            await observer.dispose()
            await a.end(signal.SIGKILL)
            await b.end()
    bodies = {r.headers["x-webhook-id"]: json.loads(r.body) for r in receiver.at(HOOK) if r.status < 300}
    assert len(bodies) == expected  # after dedupe by X-Webhook-Id: each event once, none lost
    for kind in ("channel.created", "message.new"):
        assert sorted(body["cid"] for body in bodies.values() if body["type"] == kind) == [
            f"messaging:{u}-sender" for u in users]
    repeats = len(_webhook_ids(receiver)) - expected
    print(f"\n{handled}/{total} handled at the kill, A had posted {posted[0]:.0f} webhooks, B {posted[1]:.0f}; "
          f"{repeats} events received twice (in flight at the kill)")


async def test_two_replicas_share_a_campaign_and_one_killed_leaves_the_rest_to_the_other(new_db_url, tmp_path):
    users = [f"user-{i:05d}" for i in range(20_000)]
    ghosts = [f"ghost-{i}" for i in range(GHOSTS)]
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system:
        delivery_url = await new_db_url("delivery")
        # Paced (20,000 recipients take 10 s at least): the kill lands mid-way on any machine.
        env = _env(system, delivery_url, tmp_path, HERALD_LEASE_S="2", HERALD_MAX_SEND_RATE=str(RATE),
                   HERALD_DELIVERY_BATCH_SIZE=str(BATCH))
        a, b = Replica(env), Replica(env)
        observer = make_engine(delivery_url)
        try:
            await a.start()
            await b.start()
            async with client_channel(a.port) as to_a, client_channel(b.port) as to_b:
                on_a, on_b = Stubs(system.channel("segment"), to_a), Stubs(system.channel("segment"), to_b)
                await upsert_users(on_a.directory, ["sender", *users])
                segment_id = await user_segment(on_a.segments, [*users, *ghosts])
                started = time.monotonic()
                await start(on_a, campaign("split", segment_ids=[segment_id]))
                total = len(users) + len(ghosts)
                shares = await eventually(lambda: asyncio.gather(a.recipients_written(), b.recipients_written()),
                                          lambda ab: min(ab) > 0, timeout_s=60, interval_s=0.2,
                                          what="both replicas sending")
                await a.end(signal.SIGKILL)  # and not restarted
                handled, status = await _handled(observer, "split")
                assert status == IN_PROGRESS and handled < total, "killed mid-way"
                # The rate is the campaign's, across both replicas (a batch each ahead at most).
                assert handled <= RATE * (time.monotonic() - started) + 2 * BATCH

                done = await wait_done(on_b, "split", timeout_s=180)
                await _check_exactly_once(on_b, done, "split", users, ghosts)
                assert await b.recipients_written() >= total - handled  # B sent the rest
        finally:
            await observer.dispose()
            await a.end(signal.SIGKILL)
            await b.end()
    print(f"\nbefore the kill A wrote {shares[0]:.0f}, B {shares[1]:.0f}; {handled}/{total} handled at the kill")


async def test_a_restarted_replica_does_not_take_a_delivery_another_replica_runs(new_db_url, tmp_path):
    users = [f"user-{i:04d}" for i in range(2400)]
    ghosts = [f"ghost-{i}" for i in range(GHOSTS)]
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system:
        delivery_url = await new_db_url("delivery")
        env = _env(system, delivery_url, tmp_path, HERALD_LEASE_S="10", HERALD_MAX_SEND_RATE="400",
                   HERALD_DELIVERY_BATCH_SIZE="100")
        a, b = Replica(env), Replica(env)
        observer = make_engine(delivery_url)
        try:
            await a.start()
            await b.start()
            async with client_channel(a.port) as to_a:
                on_a = Stubs(system.channel("segment"), to_a)
                await upsert_users(on_a.directory, ["sender", *users])
                segment_id = await user_segment(on_a.segments, [*users, *ghosts])
                await start(on_a, campaign("held", segment_ids=[segment_id]))
                total = len(users) + len(ghosts)
                await eventually(lambda: _handled(observer, "held"), lambda hs: hs[0] > 0, what="sending began")
                await b.end(signal.SIGKILL)
                await b.start()  # restarted while A sends: the delivery is A's (its lease is alive)
                handled, status = await _handled(observer, "held")
                assert status == IN_PROGRESS and handled < total, "restarted while A was sending"
            async with client_channel(b.port) as to_b:
                on_b = Stubs(system.channel("segment"), to_b)
                done = await wait_done(on_b, "held", timeout_s=120)  # watched on the replica not sending
                await _check_exactly_once(on_b, done, "held", users, ghosts)
            assert await b.recipients_written() == 0
            assert await a.recipients_written() == total
        finally:
            await observer.dispose()
            await a.end()
            await b.end()
