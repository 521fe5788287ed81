"""A 60,000-recipient campaign through the three real services on SQLite.

    .venv/bin/python -m bench.delivery_bench [--recipients 60000] [--direct] [--runs 5]

Starts segment_svc, delivery_svc and campaign_svc as subprocesses on SQLite in a temp dir,
upserts the users and a sender, makes an all_users segment, creates a campaign with
create_channels, a 1-1 channel template and templated text, and times StartCampaign →
completed (WatchCampaign). `--direct` (or a campaign service that does not answer yet) drives
DeliveryService.StartDelivery / WatchDelivery instead, and says so. Prints seconds,
recipients/s and each service's peak RSS (sampled every 20 ms with psutil), plus the RSS
before the campaign, to show memory stays flat, and each service's CPU-seconds (user + system)
spent between StartCampaign and completion, with their sum per 1,000 recipients. `--runs N`
repeats the whole thing on fresh services and prints each run's figures, then their median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from bench.processes import stop_all
from services.kit.probes import free_port, wait_serving
from services.kit.auth import make_token
from services.kit.clients import open_channel

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
SERVICES = ("segment", "delivery", "campaign")
TEXT = "Hi {{ receiver.name }}, {{ sender.name }} has news for you!"


class PeakRss:
    """Samples the RSS of each service process in the background."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.peak = {name: 0 for name in processes}
        self._task: asyncio.Task | None = None

    def cpu(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self.processes.items()}

    def now(self) -> dict[str, int]:
        return {name: p.memory_info().rss for name, p in self.processes.items()}

    async def _sample(self) -> None:
        while True:
            for name, rss in self.now().items():
                self.peak[name] = max(self.peak[name], rss)
            await asyncio.sleep(0.02)

    def __enter__(self):
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


@dataclass
class Figures:
    """One run's figures: wall time and the CPU each service spent on the campaign."""
    recipients: int
    seconds: float
    cpu: dict[str, float]

    @property
    def cpu_per_thousand(self) -> float:
        return sum(self.cpu.values()) / self.recipients * 1000

    def line(self) -> str:
        per_service = "  ".join(f"{name} {self.cpu[name]:.2f}" for name in SERVICES)
        return (f"seconds {self.seconds:6.2f}  recipients/s {self.recipients / self.seconds:7,.0f}  "
                f"CPU s: {per_service}  CPU s per 1,000 recipients: {self.cpu_per_thousand:.3f}")


def median(runs: list[Figures]) -> Figures:
    return Figures(runs[0].recipients, statistics.median(r.seconds for r in runs),
                   {name: statistics.median(r.cpu[name] for r in runs) for name in SERVICES})


async def run(recipients: int, direct: bool, batch_size: int, profile: str = "") -> Figures:
    data_dir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ, HERALD_DATA_DIR=str(data_dir), HERALD_API_SECRET=SECRET, HERALD_LOG_LEVEL="WARNING",
               HERALD_DELIVERY_BATCH_SIZE=str(batch_size),
               **{f"HERALD_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()})
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name in SERVICES:
            processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}_svc", env=env, stderr=open(data_dir / f"{name}.log", "wb"))
        for name in SERVICES:
            await wait_serving(ports[name])
        token = make_token(SECRET, "bench")
        channels = {name: open_channel(f"127.0.0.1:{port}", token=token) for name, port in ports.items()}
        directory = directory_service_pb2_grpc.DirectoryServiceStub(channels["segment"])
        segments = segment_service_pb2_grpc.SegmentServiceStub(channels["segment"])
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels["campaign"])
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(channels["delivery"])

        t0 = time.perf_counter()
        users = [directory_pb2.User(id="sender", name="The Sender")]
        users += [directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}") for i in range(recipients)]
        for start in range(0, len(users), 10_000):
            await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=users[start:start + 10_000]))
        segment = (await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
            type=segment_pb2.SEGMENT_TYPE_USER, name="everyone", all_users=True))).segment
        print(f"setup: {recipients + 1} users upserted, segment {segment.id} in {time.perf_counter() - t0:.1f} s")

        fields = dict(name="bench", sender_id="sender", segment_ids=[segment.id], create_channels=True,
                      channel_template=common_pb2.ChannelTemplate(type="messaging",
                                                                  id="{{ receiver.id }}-{{ sender.id }}"),
                      message_template=common_pb2.MessageTemplate(text=TEXT))
        use_campaigns = not direct
        if use_campaigns:
            try:
                created = await campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(**fields))
            except grpc.aio.AioRpcError as exc:
                print(f"campaign service did not create the campaign ({exc.code().name}: {exc.details()}); "
                      "driving DeliveryService.StartDelivery directly")
                use_campaigns = False
        rss = PeakRss({name: psutil.Process(p.pid) for name, p in processes.items()})
        before, cpu_before = rss.now(), rss.cpu()
        profiler = await start_profiler(processes[profile].pid, data_dir / f"{profile}.pyspy.txt") if profile else None
        with rss:
            t0 = time.perf_counter()
            if use_campaigns:
                campaign_id = created.campaign.id
                await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=campaign_id))
                async for update in campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id)):
                    final = update.campaign
                stats = final.stats
                status = campaign_pb2.CampaignStatus.Name(final.status)
            else:
                snapshot = campaign_pb2.Campaign(id="bench-campaign", **fields)
                await deliveries.StartDelivery(delivery_service_pb2.StartDeliveryRequest(campaign=snapshot))
                async for update in deliveries.WatchDelivery(
                        delivery_service_pb2.WatchDeliveryRequest(campaign_id=snapshot.id)):
                    final = update.delivery
                stats = final.stats
                status = campaign_pb2.CampaignStatus.Name(final.status)
            seconds = time.perf_counter() - t0
        cpu = {name: spent - cpu_before[name] for name, spent in rss.cpu().items()}
        if profiler is not None:
            await stop_all([profiler], signal.SIGINT)
        path = "StartCampaign → WatchCampaign completed" if use_campaigns else \
            "StartDelivery → WatchDelivery completed (campaign_svc not used)"
        print(f"path: {path}")
        print(f"status: {status}; messages sent {stats.stats_messages_sent}, channels created "
              f"{stats.stats_channels_created}, skipped {stats.recipients_skipped}, failed {stats.recipients_failed}")
        print(f"recipients: {recipients}  seconds: {seconds:.2f}  recipients/s: {recipients / seconds:,.0f}")
        for name in SERVICES:
            print(f"peak RSS {name:8s}: {rss.peak[name] / 2**20:7.1f} MiB  (before the campaign: "
                  f"{before[name] / 2**20:.1f} MiB); CPU {cpu[name]:.2f} s")
        figures = Figures(recipients, seconds, cpu)
        print(f"CPU s per 1,000 recipients (all three services): {figures.cpu_per_thousand:.3f}")
        for channel in channels.values():
            await channel.close()
        return figures
    finally:
        await stop_all(processes.values())


async def start_profiler(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy (pip install py-spy) sampling a service during the campaign only, its collapsed
    stacks written to `out` when stopped."""
    print(f"profiling pid {pid} into {out}")
    profiler = await asyncio.create_subprocess_exec(
        "py-spy", "record", "--format", "raw", "--rate", "250", "--pid", str(pid), "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # py-spy attaches
    return profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--direct", action="store_true", help="drive StartDelivery instead of StartCampaign")
    parser.add_argument("--batch-size", type=int, default=1000, help="HERALD_DELIVERY_BATCH_SIZE")
    parser.add_argument("--profile", choices=SERVICES, default="", help="run one service under py-spy record")
    parser.add_argument("--runs", type=int, default=1, help="repeat on fresh services; print each run and the median")
    args = parser.parse_args()
    runs = []
    for i in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"-- run {i} of {args.runs}", flush=True)
        runs.append(asyncio.run(run(args.recipients, args.direct, args.batch_size, args.profile)))
    if args.runs > 1:
        print(f"== {args.runs} runs of {args.recipients} recipients")
        for i, figures in enumerate(runs, 1):
            print(f"run {i}:  {figures.line()}")
        print(f"median: {median(runs).line()}")


if __name__ == "__main__":
    main()
