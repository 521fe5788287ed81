"""A campaign held to max_send_rate beside an unthrottled one: the rate it keeps, and what it costs the other.

    .venv/bin/python -m bench.rate_bench [--throttled 10000] [--rate 500] [--unthrottled 30000] [--runs 1]
        [--deadline 600] [--postgres postgresql+asyncpg://herald@127.0.0.1:55499/postgres [--delivery-replicas 1]]

Issue 15's "Must show": the achieved rate of a rate-500 campaign (target: within 10 % of the
rate) and how much it slows an unthrottled campaign running beside it (target: under 10 %).

Each phase runs on fresh services (bench.processes.Services: SQLite, or new databases of the
`--postgres` server, with `--delivery-replicas` delivery_svc processes sharing the deliveries)
holding the same data, so the unthrottled campaign meets the same database in both: a sender
and a paced sender, `--unthrottled` users (the first `--throttled` of them with custom
{"lane": "paced"}), an all_users segment and a filter segment {"lane": "paced"}, and two campaigns
created (delivery_bench's: create_channels, 1-1 channel template, templated text): "unthrottled"
from the sender to all_users (the users and both senders), "throttled" from the paced sender to
the paced lane (channels of its own) with max_send_rate `--rate`. Then, on both, a warm-up
campaign (1,000 user_ids from a third sender, its own channels) runs to its end: the first
campaign of fresh processes pays for cold caches and connections, and in phase B the throttled
campaign would pay it for the unthrottled one.

Phase A, alone: the unthrottled campaign, timed StartCampaign → completed (WatchCampaign).
Phase B, beside: the throttled campaign started first; once its first batch is written, the
unthrottled one, timed the same way; then the throttled one to its end. Its rate is taken
three ways:
- paced: every WatchCampaign update is stamped when it arrives (at most 4 a second, at least
  one a second while sending); between the first update showing recipients handled (sent +
  skipped + failed) and the first showing them all, (handled_last − handled_first) ÷
  (t_last − t_first). The first batch goes out at once (pacing waits after a batch), so this is
  the pace between batches; an update's lag (≤ 0.25 s of coalescing) at either end makes the
  error at most about 0.5 s ÷ the window;
- overall: recipients ÷ (stats_completed_at − stats_started_at), the services' own times: it
  includes the first batch, so the contract's bound (rate × elapsed + one batch) allows up
  to 1 + batch ÷ (rate × elapsed) of the rate;
- reported: the median of CampaignStats.send_rate over the updates while sending.
Prints each phase's CPU-seconds per service (and the PostgreSQL server's) and peak RSS, the
unthrottled campaign's seconds alone and beside, and the slowdown. `--runs N` repeats both
phases (alone first in odd runs, beside first in even ones: drift on a shared machine falls on
both alike) and prints the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from google.protobuf import struct_pb2

from bench.many_campaigns_bench import Watchers, create_request
from bench.processes import Services, Usage, upsert_users
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.segment.v1 import directory_pb2, directory_service_pb2_grpc, segment_pb2, segment_service_pb2
from herald.segment.v1 import segment_service_pb2_grpc
from services.delivery_svc.pacing import batch_size
from services.kit.limits import DEFAULT_RECIPIENT_BATCH

SENDER, PACED_SENDER, WARM_SENDER = "sender", "paced-sender", "warm-sender"
UNTHROTTLED, THROTTLED, WARM_UP = "unthrottled", "throttled", "warm-up"
WARM_UP_RECIPIENTS = 1000  # one batch through every step of sending
PACED_LANE = {"lane": "paced"}
RATE_TARGET = 0.9  # issue 15: within 10 % of the rate
SLOWDOWN_TARGET = 0.10  # issue 15: the unthrottled campaign under 10 % slower


def _struct(fields: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(fields)
    return struct


async def prepare(services: Services, args: argparse.Namespace) -> campaign_service_pb2_grpc.CampaignServiceStub:
    """What both phases start from: the users, the two audiences and the two campaigns, unstarted,
    on services that have sent a warm-up campaign (in phase B the throttled campaign would
    otherwise warm them for the unthrottled one alone)."""
    directory = directory_service_pb2_grpc.DirectoryServiceStub(services.channels["segment"])
    segments = segment_service_pb2_grpc.SegmentServiceStub(services.channels["segment"])
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(services.channels["campaign"])
    await upsert_users(directory, [directory_pb2.User(id=SENDER, name="The Sender"),
                                   directory_pb2.User(id=PACED_SENDER, name="The Paced Sender"),
                                   directory_pb2.User(id=WARM_SENDER, name="The Warm-up Sender")])
    paced = _struct(PACED_LANE)
    await upsert_users(directory, (directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}",
                                                      custom=paced if i < args.throttled else None)
                                   for i in range(args.unthrottled)))
    everyone, lane = [(await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_USER, name=name, **audience))).segment.id
        for name, audience in (("everyone", {"all_users": True}), ("paced lane", {"filter": paced}))]
    for campaign_id, sender_id, segment_id, rate in ((UNTHROTTLED, SENDER, everyone, 0.0),
                                                     (THROTTLED, PACED_SENDER, lane, args.rate)):
        request = create_request(campaign_id, sender_id, [])
        request.segment_ids.append(segment_id)
        request.max_send_rate = rate
        await campaigns.CreateCampaign(request)
    await campaigns.CreateCampaign(create_request(
        WARM_UP, WARM_SENDER, [f"user-{i:07d}" for i in range(min(WARM_UP_RECIPIENTS, args.unthrottled))]))
    warm_up = Watchers(campaigns, [WARM_UP])
    await warm_up.opened()
    await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=WARM_UP))
    await warm_up.finished(args.deadline)
    return campaigns


def handled(stats: campaign_pb2.CampaignStats) -> int:
    return stats.stats_messages_sent + stats.recipients_skipped + stats.recipients_failed


@dataclass
class Sample:
    """One WatchCampaign update: when it arrived (perf_counter) and what it told."""
    at: float
    handled: int
    send_rate: float
    sending: bool


class Pace:
    """Every WatchCampaign update of one campaign, stamped as it arrives, until its terminal state."""

    def __init__(self, stub: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str) -> None:
        self.samples: list[Sample] = []
        self.opened = asyncio.Event()
        self.written = asyncio.Event()  # a first batch is written
        self._task = asyncio.create_task(self._watch(stub, campaign_id))

    async def _watch(self, stub: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str) -> None:
        async for update in stub.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id)):
            campaign = update.campaign
            self.samples.append(Sample(time.perf_counter(), handled(campaign.stats), campaign.stats.send_rate,
                                       campaign.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS))
            self.opened.set()
            if self.samples[-1].handled > 0:
                self.written.set()

    async def first_batch(self, deadline_s: float) -> None:
        try:
            await asyncio.wait_for(self.written.wait(), deadline_s)
        except TimeoutError:
            raise SystemExit(f"the throttled campaign wrote nothing in {deadline_s:g} s") from None

    def rate(self) -> tuple[float, float]:
        """The paced rate (see the module doc) and its window's seconds; NaN when the updates
        showed fewer than two counts (the campaign fits in one batch)."""
        counted = [s for s in self.samples if s.handled > 0]
        if not counted:
            return float("nan"), 0.0
        first = counted[0]
        last = next(s for s in counted if s.handled == counted[-1].handled)
        if last.at <= first.at:
            return float("nan"), 0.0
        return (last.handled - first.handled) / (last.at - first.at), last.at - first.at

    def reported(self) -> float:
        """The median of CampaignStats.send_rate while sending (0 before a rate is known excluded)."""
        rates = [s.send_rate for s in self.samples if s.sending and s.send_rate > 0]
        return statistics.median(rates) if rates else float("nan")


@dataclass
class Run:
    """One run's figures: the unthrottled campaign's seconds alone and beside the throttled one,
    the throttled one's rates, each phase's CPU-seconds per process."""
    alone_s: float
    beside_s: float
    paced: float  # recipients/s between the first and the last batch
    overall: float  # recipients ÷ (stats_completed_at − stats_started_at)
    bound: float  # the most `overall` may be: rate + one batch over the elapsed time
    reported: float  # median CampaignStats.send_rate
    cpu_alone: dict[str, float]
    cpu_beside: dict[str, float]  # while the unthrottled campaign ran beside the throttled one

    @property
    def slowdown(self) -> float:
        return self.beside_s / self.alone_s - 1


def cpu_line(cpu: dict[str, float]) -> str:
    return "  ".join(f"{name} {spent:.2f}" for name, spent in cpu.items()) + f"  (sum {sum(cpu.values()):.2f})"


def services_for(args: argparse.Namespace) -> Services:
    return Services(postgres=args.postgres, prefix="herald-rate-bench-", delivery_replicas=args.delivery_replicas)


async def alone(args: argparse.Namespace) -> tuple[float, Usage]:
    """Phase A: the unthrottled campaign alone; its seconds from StartCampaign to completed."""
    async with services_for(args) as services:
        campaigns = await prepare(services, args)
        watcher = Watchers(campaigns, [UNTHROTTLED])
        await watcher.opened()
        with Usage(services) as usage:
            t0 = time.perf_counter()
            await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=UNTHROTTLED))
            await watcher.finished(args.deadline)
        seconds = watcher.done_at[UNTHROTTLED] - t0
        stats = watcher.last[UNTHROTTLED].stats
    print(f"A, alone: unthrottled {handled(stats):,} recipients (sent {stats.stats_messages_sent:,}, skipped "
          f"{stats.recipients_skipped}, failed {stats.recipients_failed}) in {seconds:.2f} s, "
          f"{handled(stats) / seconds:,.0f}/s", flush=True)
    print(f"  {usage.summary()}", flush=True)
    return seconds, usage


async def beside(args: argparse.Namespace) -> tuple[float, Pace, campaign_pb2.Campaign, Usage, Usage]:
    """Phase B: the throttled campaign, and from its first batch on the unthrottled one beside it."""
    async with services_for(args) as services:
        campaigns = await prepare(services, args)
        unthrottled, throttled = Watchers(campaigns, [UNTHROTTLED]), Watchers(campaigns, [THROTTLED])
        pace = Pace(campaigns, THROTTLED)
        await asyncio.gather(unthrottled.opened(), throttled.opened(), pace.opened.wait())
        with Usage(services) as whole:
            await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=THROTTLED))
            await pace.first_batch(args.deadline)
            with Usage(services) as overlap:
                t0 = time.perf_counter()
                await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=UNTHROTTLED))
                await unthrottled.finished(args.deadline)
            if THROTTLED in throttled.done_at:
                print("  the throttled campaign ended before the unthrottled one: raise --throttled")
            await throttled.finished(args.deadline)
        seconds = unthrottled.done_at[UNTHROTTLED] - t0
        stats = unthrottled.last[UNTHROTTLED].stats
    print(f"B, beside: unthrottled {handled(stats):,} recipients in {seconds:.2f} s, {handled(stats) / seconds:,.0f}/s",
          flush=True)
    print(f"  CPU s while it ran: {cpu_line(overlap.spent)}; the whole phase: {whole.summary()}", flush=True)
    return seconds, pace, throttled.last[THROTTLED], overlap, whole


async def run(args: argparse.Namespace, alone_first: bool) -> Run:
    if alone_first:
        alone_s, usage_alone = await alone(args)
    beside_s, pace, throttled, overlap, _ = await beside(args)
    if not alone_first:
        alone_s, usage_alone = await alone(args)
    stats = throttled.stats
    elapsed = stats.stats_completed_at.ToMicroseconds() / 1e6 - stats.stats_started_at.ToMicroseconds() / 1e6
    batch = batch_size(DEFAULT_RECIPIENT_BATCH, args.rate)
    paced, window = pace.rate()
    figures = Run(alone_s, beside_s, paced, handled(stats) / elapsed, args.rate + batch / elapsed, pace.reported(),
                  usage_alone.spent, overlap.spent)
    print(f"throttled ({campaign_pb2.CampaignStatus.Name(throttled.status)}): {handled(stats):,} recipients at "
          f"max_send_rate {args.rate:g}, batches of {batch}: paced {paced:,.1f}/s over {window:.1f} s; overall "
          f"{figures.overall:,.1f}/s over {elapsed:.2f} s (the bound, rate × elapsed + one batch: "
          f"{figures.bound:,.1f}/s); reported send_rate median {figures.reported:,.1f}/s")
    print(f"this run: {line(figures, args.rate)}", flush=True)
    return figures


def line(figures: Run, rate: float) -> str:
    return (f"throttled paced {figures.paced:,.1f}/s = {figures.paced / rate:.3f} of the rate (overall "
            f"{figures.overall / rate:.3f}, bound {figures.bound / rate:.3f}; reported {figures.reported / rate:.3f}); "
            f"unthrottled alone {figures.alone_s:.2f} s, beside "
            f"{figures.beside_s:.2f} s: slowdown {figures.slowdown:+.1%}; CPU s alone {sum(figures.cpu_alone.values()):.2f}"
            f", beside {sum(figures.cpu_beside.values()):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throttled", type=int, default=10_000, help="recipients of the throttled campaign")
    parser.add_argument("--rate", type=float, default=500.0, help="its max_send_rate, recipients/s")
    parser.add_argument("--unthrottled", type=int, default=30_000, help="users: the unthrottled campaign's audience")
    parser.add_argument("--runs", type=int, default=1, help="repeat both phases on fresh services; print the medians")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for each campaign")
    parser.add_argument("--postgres", default="", metavar="URL",
                        help="run the services on new databases of this PostgreSQL server "
                             "(postgresql+asyncpg://USER@HOST:PORT/postgres)")
    parser.add_argument("--delivery-replicas", type=int, default=1, help="with --postgres: delivery_svc processes")
    args = parser.parse_args()
    if not 0 < args.throttled <= args.unthrottled:
        parser.error("--throttled users are among the --unthrottled ones: 1 ≤ --throttled ≤ --unthrottled")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.delivery_replicas > 1 and not args.postgres:
        parser.error("--delivery-replicas needs --postgres URL")
    where = "PostgreSQL" if args.postgres else "SQLite"
    if args.delivery_replicas > 1:
        where += f", {args.delivery_replicas} delivery replicas"
    print(f"on {where}: {args.unthrottled:,} users; throttled campaign {args.throttled:,} recipients at "
          f"{args.rate:g}/s, unthrottled campaign all_users", flush=True)
    runs = []
    for i in range(1, args.runs + 1):
        print(f"-- run {i} of {args.runs}", flush=True)
        runs.append(asyncio.run(run(args, alone_first=i % 2 == 1)))
    paced = statistics.median(r.paced for r in runs) / args.rate
    slowdown = statistics.median(r.slowdown for r in runs)
    if args.runs > 1:
        print(f"== {args.runs} runs on {where}")
        for i, figures in enumerate(runs, 1):
            print(f"run {i}: {line(figures, args.rate)}")
    print(f"== throttled: {paced:.3f} of max_send_rate {args.rate:g} (target ≥ {RATE_TARGET}, ≤ 1 + one batch); "
          f"unthrottled slowed {slowdown:+.1%} beside it (target < {SLOWDOWN_TARGET:.0%})"
          + (" — medians" if args.runs > 1 else ""))


if __name__ == "__main__":
    main()
