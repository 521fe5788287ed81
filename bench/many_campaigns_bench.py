"""100 campaigns of 300 recipients started at once from 16 threads, then one of 10,000, on the same three services.

    .venv/bin/python -m bench.many_campaigns_bench [--campaigns 100] [--recipients-per-campaign 300]
        [--threads 16] [--single 10000] [--postgres postgresql+asyncpg://herald@127.0.0.1:55499/postgres]

Starts segment_svc, delivery_svc and campaign_svc as subprocesses (bench.processes.Services, on
SQLite or, with `--postgres URL`, on new databases of that server, dropped after). Ten senders
and 10 × recipients-per-campaign users (3,000): campaign k, from sender k mod 10, targets a
user_ids list of 300 users starting at user k × 27 (users × 0.9 ÷ campaigns) modulo 3,000, so
audiences overlap, and the campaigns of one sender share some recipients' 1-1 channels. Each
has create_channels, a 1-1 channel template and delivery_bench's templated text. All are created
first and watched (WatchCampaign, one stream each, open before the starts); then StartCampaign
for all of them at once from `--threads` threads (a ThreadPoolExecutor, sync grpc stubs on one
channel). Prints the StartCampaign latencies (median, p95, max; issue 11's target: median
< 50 ms), the wall time from the first start until the last campaign completed and the
messages/s over it (the campaigns' stats_messages_sent summed), then, on the same services, one
campaign of `--single` recipients (10,000 users of its own, the user_ids limit) timed
StartCampaign → completed, its messages/s, and the ratio many/one (target ≥ 0.8). Each phase's
CPU-seconds per service (and the PostgreSQL server's) and peak RSS come too. Waits are bounded by
`--deadline`; past it, the bench says what each unfinished campaign looked like last.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc

from bench.delivery_bench import TEXT
from bench.processes import Services, Usage, upsert_users
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2_grpc
from services.kit.clients import CHANNEL_OPTIONS
from services.kit.limits import MAX_AUDIENCE_USERS

SENDERS = 10
TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)


def create_request(campaign_id: str, sender_id: str, user_ids: list[str]) -> campaign_service_pb2.CreateCampaignRequest:
    return campaign_service_pb2.CreateCampaignRequest(
        id=campaign_id, name=campaign_id, sender_id=sender_id, user_ids=user_ids, create_channels=True,
        channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
        message_template=common_pb2.MessageTemplate(text=TEXT))


class Watchers:
    """One WatchCampaign stream per campaign: when each reached a terminal state, and what each
    looked like last (for the report when the deadline passes first)."""

    def __init__(self, stub, campaign_ids: list[str]) -> None:
        self.stub = stub
        self.last: dict[str, campaign_pb2.Campaign] = {}
        self.done_at: dict[str, float] = {}
        self._opened = asyncio.Semaphore(0)
        self._tasks = [asyncio.create_task(self._watch(campaign_id)) for campaign_id in campaign_ids]

    async def _watch(self, campaign_id: str) -> None:
        call = self.stub.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id))
        first = True
        async for update in call:
            self.last[campaign_id] = update.campaign
            if first:
                first = False
                self._opened.release()
            if update.campaign.status in TERMINAL:
                self.done_at[campaign_id] = time.perf_counter()
                call.cancel()
                return

    async def opened(self) -> None:
        """Every stream has sent its first update: the campaigns are being watched."""
        for _ in self._tasks:
            await self._opened.acquire()

    async def finished(self, deadline_s: float) -> None:
        """Every campaign reached a terminal state; past `deadline_s`, raises saying what was seen last."""
        try:
            await asyncio.wait_for(asyncio.gather(*self._tasks), deadline_s)
        except TimeoutError:
            raise SystemExit(f"after {deadline_s:g} s: {self.report()}") from None

    def report(self) -> str:
        statuses = Counter(campaign_pb2.CampaignStatus.Name(c.status) for c in self.last.values())
        unfinished = [c for c in self.last.values() if c.status not in TERMINAL][:5]
        seen = "; ".join(f"{c.id} {campaign_pb2.CampaignStatus.Name(c.status)}, sent {c.stats.stats_messages_sent}, "
                         f"failed {c.stats.recipients_failed}" for c in unfinished)
        return f"{dict(statuses)} of {len(self._tasks)} campaigns; unfinished, as last seen: {seen}"

    def totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for campaign in self.last.values():
            totals["sent"] += campaign.stats.stats_messages_sent
            totals["channels"] += campaign.stats.stats_channels_created
            totals["skipped"] += campaign.stats.recipients_skipped
            totals["failed"] += campaign.stats.recipients_failed
            totals["stopped"] += campaign.status == campaign_pb2.CAMPAIGN_STATUS_STOPPED
        return totals


def start_all(addr: str, token: str, campaign_ids: list[str], threads: int) -> list[tuple[float, float]]:
    """StartCampaign for every id from `threads` threads at once; (when it was called, its latency) each."""
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(addr, options=CHANNEL_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)

        def start(campaign_id: str) -> tuple[float, float]:
            called = time.perf_counter()
            stub.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=campaign_id), metadata=metadata,
                               timeout=60)
            return called, time.perf_counter() - called

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(start, campaign_ids))


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> None:
    async with Services(postgres=args.postgres, prefix="herald-many-bench-") as services:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(services.channels["segment"])
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(services.channels["campaign"])
        audience = SENDERS * args.recipients_per_campaign
        step = max(1, audience * 9 // 10 // args.campaigns)
        t0 = time.perf_counter()
        await upsert_users(directory, (directory_pb2.User(id=f"sender-{s}", name=f"Sender {s}") for s in range(SENDERS)))
        await upsert_users(directory, (directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}") for i in range(audience)))
        await upsert_users(directory, (directory_pb2.User(id=f"single-{i:07d}", name=f"Single {i}")
                                       for i in range(args.single)))
        ids = [f"many-{k:04d}" for k in range(args.campaigns)]
        for k, campaign_id in enumerate(ids):
            user_ids = [f"user-{(k * step + j) % audience:07d}" for j in range(args.recipients_per_campaign)]
            await campaigns.CreateCampaign(create_request(campaign_id, f"sender-{k % SENDERS}", user_ids))
        where = "PostgreSQL" if args.postgres else "SQLite"
        print(f"setup on {where}: {SENDERS} senders, {audience:,} + {args.single:,} users, {args.campaigns} campaigns "
              f"of {args.recipients_per_campaign} (campaign k from user k × {step}) created in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

        watchers = Watchers(campaigns, ids)
        await watchers.opened()
        with Usage(services) as usage:
            started = await asyncio.to_thread(start_all, services.addr("campaign"), services.token, ids, args.threads)
            await watchers.finished(args.deadline)
        first = min(called for called, _ in started)
        wall = max(watchers.done_at.values()) - first
        latencies = [latency * 1000 for _, latency in started]
        totals = watchers.totals()
        many_rate = totals["sent"] / wall
        print(f"StartCampaign from {args.threads} threads: median {statistics.median(latencies):.0f} ms, "
              f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms (target: median < 50 ms)")
        print(f"{args.campaigns} campaigns completed {wall:.2f} s after the first start: {totals['sent']:,} messages, "
              f"{many_rate:,.0f} messages/s (channels created {totals['channels']:,}, skipped {totals['skipped']}, "
              f"failed {totals['failed']}, stopped campaigns {totals['stopped']})")
        print(f"  {usage.summary()}", flush=True)

        await campaigns.CreateCampaign(create_request(
            "single", "sender-0", [f"single-{i:07d}" for i in range(args.single)]))
        watcher = Watchers(campaigns, ["single"])
        await watcher.opened()
        with Usage(services) as usage:
            t0 = time.perf_counter()
            await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id="single"))
            await watcher.finished(args.deadline)
        seconds = watcher.done_at["single"] - t0
        sent = watcher.totals()
        single_rate = sent["sent"] / seconds
        print(f"one campaign of {args.single:,}: StartCampaign → completed {seconds:.2f} s, {sent['sent']:,} messages, "
              f"{single_rate:,.0f} messages/s (failed {sent['failed']}, skipped {sent['skipped']})")
        print(f"  {usage.summary()}")
        print(f"many/one: {many_rate / single_rate:.2f} (issue 11's target: ≥ 0.8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--recipients-per-campaign", type=int, default=300)
    parser.add_argument("--threads", type=int, default=16, help="threads calling StartCampaign")
    parser.add_argument("--single", type=int, default=10_000, help="recipients of the one campaign after")
    parser.add_argument("--postgres", default="", metavar="URL",
                        help="run the services on new databases of this PostgreSQL server "
                             "(postgresql+asyncpg://USER@HOST:PORT/postgres)")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for each phase's completion")
    args = parser.parse_args()
    for option, value in (("--single", args.single), ("--recipients-per-campaign", args.recipients_per_campaign)):
        if not 0 < value <= MAX_AUDIENCE_USERS:
            parser.error(f"{option} makes a user_ids list: 1 to {MAX_AUDIENCE_USERS:,} users")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
