"""Campaign service benchmark: scheduler lateness, WatchCampaign fan-out, big user lists.

    .venv/bin/python -m bench.campaign_bench [--scheduled 30] [--watchers 1000] [--users 10000]

The three real services run in-process on SQLite (tests/harness.serve_system), with the wall clock.
Prints:
- lateness of scheduled starts (time the campaign turned in_progress minus scheduled_for, as seen
  by a WatchCampaign on each), p50 / p95 / max — DESIGN §5 aims at "within a second";
- WatchCampaign fan-out: N concurrent watchers of one campaign, how long after the delivery's
  completion the last of them had the terminal state, and how many upstream WatchDelivery
  calls campaign_svc opened for them (should be 1);
- CreateCampaign with a 10,000-id user list and GetCampaign pages of 1,000 users (latency).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from google.protobuf import timestamp_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import serve_system  # noqa: E402
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc  # noqa: E402
from herald.common.v1 import common_pb2  # noqa: E402
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc  # noqa: E402

IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)


def _ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def _request(**fields) -> cs.CreateCampaignRequest:
    return cs.CreateCampaignRequest(sender_id="sender", message_template=common_pb2.MessageTemplate(
        text="Hi {{ receiver.name }}"), channel_template=common_pb2.ChannelTemplate(type="messaging"),
        create_channels=True, **fields)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def scheduler_lateness(campaigns, count: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    due: dict[str, dt.datetime] = {}
    for i in range(count):
        campaign_id = f"sched-{i}"
        await campaigns.CreateCampaign(_request(id=campaign_id, user_ids=["u0"]))
        due[campaign_id] = now + dt.timedelta(seconds=2 + 3 * i / count)
        await campaigns.StartCampaign(cs.StartCampaignRequest(id=campaign_id, scheduled_for=_ts(due[campaign_id])))
    seen: dict[str, float] = {}

    async def watch(campaign_id: str) -> None:
        async for response in campaigns.WatchCampaign(cs.WatchCampaignRequest(id=campaign_id)):
            if response.campaign.status == IN_PROGRESS and campaign_id not in seen:
                seen[campaign_id] = time.time()
            if response.campaign.status in TERMINAL:
                return

    await asyncio.wait_for(asyncio.gather(*(watch(c) for c in due)), 60)
    lateness = [seen[c] - due[c].timestamp() for c in due]
    print(f"scheduled starts: {count}, lateness p50 {statistics.median(lateness):.3f}s "
          f"p95 {_pct(lateness, 0.95):.3f}s max {max(lateness):.3f}s")


async def watch_fan_out(system, campaigns, watchers: int, users: int) -> None:
    await campaigns.CreateCampaign(_request(id="fan-out", user_ids=[f"u{i}" for i in range(users)]))
    finished_at: list[float] = []
    ready = asyncio.Event()
    opened = 0

    async def watch() -> None:
        nonlocal opened
        last = None
        async for response in campaigns.WatchCampaign(cs.WatchCampaignRequest(id="fan-out")):
            if last is None:
                opened += 1
                if opened == watchers:
                    ready.set()
            last = response.campaign
        assert last.status in TERMINAL
        finished_at.append(time.time())

    app = system.servers["campaign"].service
    watches_before = app.sending.upstream_watches
    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 60)
    started = time.time()
    await campaigns.StartCampaign(cs.StartCampaignRequest(id="fan-out"))
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    final = (await campaigns.GetCampaign(cs.GetCampaignRequest(id="fan-out", limit=1))).campaign
    completed_at = final.stats.stats_completed_at.ToDatetime(tzinfo=dt.timezone.utc).timestamp()
    spread = max(finished_at) - min(finished_at)
    print(f"fan-out: {watchers} watchers of a {users}-recipient campaign; sent in {max(finished_at) - started:.2f}s "
          f"(start to last watcher's terminal state); last watcher had it {max(finished_at) - completed_at:.2f}s "
          f"after stats_completed_at; terminal spread across watchers {spread * 1000:.0f} ms; "
          f"upstream WatchDelivery calls for them: {app.sending.upstream_watches - watches_before}")


async def big_lists(campaigns, users: int) -> None:
    started = time.monotonic()
    await campaigns.CreateCampaign(_request(id="big", user_ids=[f"u{i}" for i in range(users)]))
    created = time.monotonic() - started
    pages, cursor, page_times = 0, "", []
    while True:
        t = time.monotonic()
        response = await campaigns.GetCampaign(cs.GetCampaignRequest(id="big", limit=1000, next=cursor))
        page_times.append(time.monotonic() - t)
        pages += 1
        cursor = response.users.next
        if not cursor:
            break
    print(f"CreateCampaign with {users} user ids: {created * 1000:.0f} ms; GetCampaign {pages} pages of 1,000 "
          f"users: p50 {statistics.median(page_times) * 1000:.0f} ms, max {max(page_times) * 1000:.0f} ms")


async def run(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async def new_db_url(name: str) -> str:
            return f"sqlite+aiosqlite:///{Path(tmp) / (name + '.db')}"

        async with serve_system(new_db_url, Path(tmp)) as system:
            directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
            campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
            ids = ["sender", *(f"u{i}" for i in range(args.users))]
            for start in range(0, len(ids), 10_000):
                await directory.UpsertUsers(ds.UpsertUsersRequest(
                    users=[directory_pb2.User(id=i, name=i) for i in ids[start:start + 10_000]]))
            await scheduler_lateness(campaigns, args.scheduled)
            await watch_fan_out(system, campaigns, args.watchers, min(args.users, 2000))
            await big_lists(campaigns, args.users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduled", type=int, default=30)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--users", type=int, default=10_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
