"""Pause and resume (DESIGN §10.2) through the real services, delivery_svc as processes: a
20,000-recipient campaign paused and resumed five times at random points, one delivery process
killed with kill -9 while paused (it comes back paused), and the text changed while paused. Every
recipient gets exactly one message, those sent after the change carry the new text, the stats
are a clean run's, and a watcher sees each pause and resume. On PostgreSQL the same with two
delivery replicas sharing the campaign.

The seed is printed; `HERALD_PAUSE_SEED=<seed>` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

import pytest
import sqlalchemy as sa

from conftest import PG_ADMIN_URL
from harness import client_channel, eventually, serve_system
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2
from services.kit.db import make_engine
from services.kit.probes import free_port, wait_serving

from delivery.crash import checkpoint, delivery_env, spawn
from delivery.helpers import Stubs, all_messages, all_recipients, upsert_users, user_segment

USERS, GHOSTS, PAUSES = 20_000, 7, 5
RATE, BATCH = 4000, 200  # paced, so that five pauses land mid-way on any machine
IN_PROGRESS, PAUSED = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS, campaign_pb2.CAMPAIGN_STATUS_PAUSED
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


class Deliveries:
    """delivery_svc processes on one database, each on its own port."""

    def __init__(self, count: int, **env_fields) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.envs = [delivery_env(port=port, **env_fields) for port in self.ports]
        self.processes: list[asyncio.subprocess.Process | None] = [None] * count

    @property
    def target(self) -> str:
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    async def start(self, i: int) -> None:
        process = self.processes[i] = await spawn(self.envs[i])
        await wait_serving(self.ports[i], alive=lambda: process.returncode is None)

    async def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()

    async def end(self) -> None:
        for process in self.processes:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()


class Watcher:
    """WatchCampaign from before the start to the end: every status it was sent."""

    def __init__(self, campaigns, campaign_id: str) -> None:
        self.statuses: list[int] = []
        self.task = asyncio.create_task(self._watch(campaigns, campaign_id))

    async def _watch(self, campaigns, campaign_id: str) -> None:
        async for update in campaigns.WatchCampaign(cs.WatchCampaignRequest(id=campaign_id)):
            self.statuses.append(update.campaign.status)

    def changes(self) -> list[int]:
        """The statuses seen, repeats in a row counted once."""
        return [s for i, s in enumerate(self.statuses) if i == 0 or s != self.statuses[i - 1]]


def _request(segment_id: str, text: str, **fields) -> dict:
    return dict(sender_id="sender", segment_ids=[segment_id], create_channels=True,
                channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
                message_template=common_pb2.MessageTemplate(text=text), **fields)


async def _logged(engine, campaign_id: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT target_id FROM recipient_log WHERE campaign_id = :c"),
                                  {"c": campaign_id})
        return {row[0] for row in rows}


async def _pause_and_resume(new_db_url, tmp_path, replicas: int) -> None:
    seed = int(os.environ.get("HERALD_PAUSE_SEED") or random.randrange(2**32))
    print(f"\npause test seed: {seed} (replay with HERALD_PAUSE_SEED={seed}); {replicas} delivery replica(s)")
    rng = random.Random(seed)
    delivery_url = await new_db_url("delivery")
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as segment_system:
        deliveries = Deliveries(replicas, segment_addr=segment_system.settings.segment_addr, db_url=delivery_url,
                                data_dir=tmp_path, batch_size=BATCH, HERALD_MAX_SEND_RATE=str(RATE))
        observer = make_engine(delivery_url)
        try:
            for i in range(replicas):
                await deliveries.start(i)
            async with serve_system(new_db_url, tmp_path / "campaign", names=("campaign",),
                                    segment_addr=segment_system.settings.segment_addr,
                                    delivery_target=deliveries.target) as system, \
                    client_channel(deliveries.ports[0]) as delivery_channel:
                await _run(rng, seed, deliveries, observer, Stubs(segment_system.channel("segment"), delivery_channel),
                           campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign")))
        finally:
            await observer.dispose()
            await deliveries.end()


async def _run(rng: random.Random, seed: int, deliveries: Deliveries, observer, stubs: Stubs, campaigns) -> None:
    msg = f"(seed {seed})"
    users = [f"user-{i:05d}" for i in range(USERS)]
    ghosts = [f"ghost-{i}" for i in range(GHOSTS)]
    await upsert_users(stubs.directory, ["sender", *users])
    segment_id = await user_segment(stubs.segments, [*users, *ghosts])
    created = await campaigns.CreateCampaign(cs.CreateCampaignRequest(
        id="paused", **_request(segment_id, "v1 {{ receiver.id }}")))
    watcher = Watcher(campaigns, "paused")
    await campaigns.StartCampaign(cs.StartCampaignRequest(id="paused"))
    total = USERS + GHOSTS
    logged_before_update: set[str] = set()
    for i, point in enumerate(sorted(rng.uniform(0.05, 0.9) * total for _ in range(PAUSES))):
        await eventually(lambda: checkpoint(observer, "paused"), lambda hs: hs[0] >= point, timeout_s=120,
                         interval_s=0.005, what=f"{point:.0f} recipients handled {msg}")
        paused = await campaigns.PauseCampaign(cs.PauseCampaignRequest(id="paused"))
        assert paused.campaign.status == PAUSED, msg
        at_pause = await checkpoint(observer, "paused")
        assert at_pause[1] == PAUSED, msg
        await eventually(lambda: watcher.statuses, lambda s: s and s[-1] == PAUSED, what=f"the watcher paused {msg}")
        if i == 1:  # killed while paused: it comes back paused
            victim = rng.randrange(len(deliveries.ports))
            await deliveries.kill(victim)
            await deliveries.start(victim)
            await asyncio.sleep(0.5)  # it would have resumed by now
            got = await campaigns.GetCampaign(cs.GetCampaignRequest(id="paused"))
            assert got.campaign.status == PAUSED, msg
        if i == 2:  # the text changes; what was sent keeps the old one
            logged_before_update = await _logged(observer, "paused")
            updated = await campaigns.UpdateCampaign(cs.UpdateCampaignRequest(
                id="paused", name="fixed", **_request(segment_id, "v2 {{ receiver.id }}")))
            assert (updated.campaign.status, updated.campaign.name) == (PAUSED, "fixed"), msg
        assert await checkpoint(observer, "paused") == at_pause, f"nothing is written while paused {msg}"
        seen = len(watcher.statuses)
        resumed = await campaigns.ResumeCampaign(cs.ResumeCampaignRequest(id="paused"))
        assert resumed.campaign.status == IN_PROGRESS, msg
        await eventually(lambda: watcher.statuses[seen:], lambda s: IN_PROGRESS in s, what=f"the watcher resumed {msg}")
        print(f"pause {i}: {at_pause[0]}/{total} handled")
    await asyncio.wait_for(watcher.task, 180)

    assert watcher.changes()[-(2 * PAUSES + 2):] == [IN_PROGRESS, *[PAUSED, IN_PROGRESS] * PAUSES, COMPLETED], msg
    done = (await campaigns.GetCampaign(cs.GetCampaignRequest(id="paused"))).campaign
    s = done.stats  # a clean run's stats
    assert (done.status, s.recipients_total, s.recipients_skipped, s.recipients_failed, s.stats_messages_sent,
            s.stats_users_sent, s.stats_channels_created, s.progress) == (
        COMPLETED, total, GHOSTS, 0, USERS, USERS, USERS, 1.0), msg
    log = await all_recipients(stubs, {"campaign_id": "paused"})
    assert len(log) == len({r.target_id for r in log}) == total, msg
    assert {r.target_id for r in log if r.status == delivery_pb2.RECIPIENT_STATUS_SENT} == set(users), msg
    messages = await all_messages(stubs, {"created_by_campaign_id": "paused"})
    assert len(messages) == len({m.id for m in messages}) == USERS, msg  # exactly one each
    assert 0 < len(logged_before_update) < total, msg
    for message in messages:
        user = message.cid.removeprefix("messaging:").removesuffix("-sender")
        version = "v1" if user in logged_before_update else "v2"
        assert message.text == f"{version} {user}", msg
    assert created.campaign.max_send_rate == 0
    if len(deliveries.ports) > 1:  # replicas: each sent partitions (a restarted one under a new name)
        async with observer.connect() as conn:
            senders = await conn.scalar(sa.text("SELECT count(DISTINCT owner) FROM delivery_partitions"))
        assert senders >= 2, msg


async def test_a_campaign_paused_and_resumed_five_times_sends_everyone_once(new_db_url, tmp_path):
    await _pause_and_resume(new_db_url, tmp_path, replicas=1)


@pytest.mark.skipif(not PG_ADMIN_URL, reason="replicas share a PostgreSQL database (SQLite: one replica)")
async def test_two_delivery_replicas_pause_and_resume_a_shared_campaign(new_db_url, tmp_path):
    await _pause_and_resume(new_db_url, tmp_path, replicas=2)
