"""What webhooks cost the sending, and how fast they go out: the 60,000-recipient campaign of
delivery_bench (create_channels, 1-1 channels, templated text: 120,002 events) through the three
real services on SQLite, with and without HERALD_WEBHOOK_URL pointing at a receiver on loopback
(its own process, answering 204 at once).

    .venv/bin/python -m bench.webhook_bench [--recipients 60000] [--runs 3] [--concurrency 16]

Prints, each as the median of the runs: the sending time (StartCampaign → completed; wall, and
the CPU seconds of the three services) without and with webhooks; with webhooks, the dispatch
time from the first event committed to the last one acknowledged, its rate, and delivery_svc's
RSS while dispatching (sampled every 50 ms); and, after each run, a bare loop of the same HTTP
client (httpx, one single-connection client per POST in flight, as many as
HERALD_WEBHOOK_CONCURRENCY) posting the same bodies to the same receiver: the rate that run's
dispatch is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from sqlalchemy import func, select

from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from bench.processes import stop_all
from services.delivery_svc import store
from services.delivery_svc.payloads import webhook_body
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.sequencer import Positions, Sequencer
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.db import make_engine, make_sessionmaker
from services.kit.probes import free_port, wait_serving

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
SERVICES = ("segment", "delivery", "campaign")
TEXT = "Hi {{ receiver.name }}, {{ sender.name }} has news for you!"
HOOK = "/hook"


@dataclass
class Run:
    send_wall: float = 0.0
    send_cpu: float = 0.0
    events: int = 0
    dispatch_s: float = 0.0  # first event committed → last acknowledged
    rss_mib: list[float] = field(default_factory=list)  # delivery_svc while dispatching


async def _stats(client: httpx.AsyncClient, url: str) -> dict:
    return (await client.get(f"{url}/stats")).json()


async def one_run(recipients: int, receiver_url: str | None, concurrency: int, data_dir: Path) -> Run:
    """A campaign on fresh services whose data lives in `data_dir` (empty)."""
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ, HERALD_DATA_DIR=str(data_dir), HERALD_API_SECRET=SECRET, HERALD_LOG_LEVEL="WARNING",
               HERALD_WEBHOOK_CONCURRENCY=str(concurrency),
               **{f"HERALD_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()})
    if receiver_url:
        env["HERALD_WEBHOOK_URL"] = receiver_url + HOOK
    processes: dict[str, asyncio.subprocess.Process] = {}
    run = Run()
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
        users = [directory_pb2.User(id="sender", name="The Sender")]
        users += [directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}") for i in range(recipients)]
        for start in range(0, len(users), 10_000):
            await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=users[start:start + 10_000]))
        segment = (await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
            type=segment_pb2.SEGMENT_TYPE_USER, name="everyone", all_users=True))).segment
        created = await campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(
            name="bench", sender_id="sender", segment_ids=[segment.id], create_channels=True,
            channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
            message_template=common_pb2.MessageTemplate(text=TEXT)))
        watched = {name: psutil.Process(p.pid) for name, p in processes.items()}
        cpu_before = sum(sum(p.cpu_times()[:2]) for p in watched.values())
        t0 = time.perf_counter()
        await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=created.campaign.id))
        async for _ in campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=created.campaign.id)):
            pass
        run.send_wall = time.perf_counter() - t0
        run.send_cpu = sum(sum(p.cpu_times()[:2]) for p in watched.values()) - cpu_before
        if receiver_url:
            await _wait_dispatched(run, receiver_url, data_dir, watched["delivery"], expected=2 * recipients + 2)
        for channel in channels.values():
            await channel.close()
    finally:
        await stop_all(processes.values())
    return run


async def _wait_dispatched(run: Run, receiver_url: str, data_dir: Path, delivery: psutil.Process,
                           expected: int) -> None:
    async with httpx.AsyncClient() as client:
        while (stats := await _stats(client, receiver_url))["ids"] < expected:
            run.rss_mib.append(delivery.memory_info().rss / 2**20)
            await asyncio.sleep(0.05)
    engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'delivery.db'}")
    async with engine.connect() as connection:
        first = await connection.scalar(select(func.min(store.events.c.created_at)))
        run.events = await connection.scalar(select(func.count()).select_from(store.events))
    await engine.dispose()
    run.dispatch_s = stats["last"] - first.timestamp()


async def bare_loop(receiver_url: str, data_dir: Path, concurrency: int) -> tuple[int, float]:
    """The same client posting the same bodies (read back from a run's event log), nothing else."""
    engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'delivery.db'}")
    sessions = make_sessionmaker(engine)
    outbox = Outbox(sessions, Sequencer(sessions, Positions()))
    bodies: list[bytes] = []
    after = 0
    while batch := await outbox.read(after, 5000):
        bodies += [webhook_body(event) for event in batch]
        after = batch[-1].sequence
    await engine.dispose()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    # As WebhookDestination holds them: one single-connection client per POST in flight.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(limits=limits, timeout=5.0) for _ in range(concurrency)]

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post(receiver_url + HOOK, content=body, headers={"content-type": "application/json"})
            response.raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    seconds = time.perf_counter() - t0
    for client in clients:
        await client.aclose()
    return len(bodies), seconds


async def _wait_answering(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await _stats(client, url)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def main_async(recipients: int, runs: int, concurrency: int) -> None:
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.webhook_receiver", str(port))
    receiver_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_answering(receiver_url)
        without, with_, bare = [], [], []
        for i in range(runs):
            with tempfile.TemporaryDirectory(prefix="herald-webhook-bench-") as data_dir:
                without.append(await one_run(recipients, None, concurrency, Path(data_dir)))
            async with httpx.AsyncClient() as client:
                await client.delete(f"{receiver_url}/stats")
            with tempfile.TemporaryDirectory(prefix="herald-webhook-bench-") as data_dir:
                run = await one_run(recipients, receiver_url, concurrency, Path(data_dir))
                with_.append(run)
                # Right after the dispatch it is compared with: the machine's load changes over a run.
                posted, bare_s = await bare_loop(receiver_url, Path(data_dir), concurrency)
            bare.append(posted / bare_s)
            print(f"run {i + 1}: sending without webhooks {without[-1].send_wall:.2f} s wall "
                  f"{without[-1].send_cpu:.1f} s CPU; with {run.send_wall:.2f} s wall {run.send_cpu:.1f} s CPU; "
                  f"{run.events:,} events dispatched in {run.dispatch_s:.2f} s ({run.events / run.dispatch_s:,.0f}/s); "
                  f"bare loop {posted:,} POSTs in {bare_s:.2f} s ({bare[-1]:,.0f}/s)", flush=True)
    finally:
        receiver.send_signal(signal.SIGTERM)
        await receiver.wait()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    base_wall, base_cpu = median([r.send_wall for r in without]), median([r.send_cpu for r in without])
    wall, cpu = median([r.send_wall for r in with_]), median([r.send_cpu for r in with_])
    dispatch_s = median([r.dispatch_s for r in with_])
    events = with_[0].events
    share = median([r.events / r.dispatch_s / rate for r, rate in zip(with_, bare)])
    rss = [m for r in with_ for m in r.rss_mib]
    print(json.dumps({"recipients": recipients, "runs": runs, "concurrency": concurrency}))
    print(f"sending without webhooks: {base_wall:.2f} s wall, {base_cpu:.1f} s CPU (median of {runs})")
    print(f"sending with webhooks:    {wall:.2f} s wall, {cpu:.1f} s CPU "
          f"({(wall / base_wall - 1) * 100:+.0f} % wall; target ≤ +25 %)")
    print(f"dispatch: {events:,} events, first committed → last acknowledged {dispatch_s:.2f} s, "
          f"{events / dispatch_s:,.0f} events/s")
    print(f"bare loop: {median(bare):,.0f} POSTs/s; dispatch reaches {share * 100:.0f} % of it, run by run "
          "(target ≥ 50 %)")
    if rss:
        print(f"delivery_svc RSS while dispatching: {min(rss):.0f}–{max(rss):.0f} MiB "
              f"(first second {median(rss[:20]):.0f} MiB, last second {median(rss[-20:]):.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="HERALD_WEBHOOK_CONCURRENCY, and the bare loop's")
    args = parser.parse_args()
    asyncio.run(main_async(args.recipients, args.runs, args.concurrency))


if __name__ == "__main__":
    main()
