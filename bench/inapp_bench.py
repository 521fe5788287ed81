"""In-app subscribers during a 60,000-recipient campaign, through the real services on SQLite.

    .venv/bin/python -m bench.inapp_bench [--recipients 60000] [--subscribers 1000]

Runs the campaign of bench.delivery_bench (segment_svc and delivery_svc as subprocesses,
StartDelivery → WatchDelivery) twice on fresh data: with no subscriber, then with
`--subscribers` live SubscribeEvents streams, each for one recipient spread over the audience.
Prints for each the sending time (wall) and delivery_svc's CPU and peak RSS, then how long
after the campaign completed the last subscriber had both its events (channel.created,
message.new), and how long a subscriber resuming from before the campaign takes to catch up
for 1 user and for all the subscribers' users (read through the event_users index). Last, with the services
stopped, what that catch-up for one user costs without the index: the outbox scanned with
each event's user_ids read as JSON (store.events_after), which is what the index replaces.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from bench.delivery_bench import TEXT
from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import (delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc, message_service_pb2,
                                message_service_pb2_grpc)
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from bench.processes import SECRET, PeakRss, stop_all
from services.delivery_svc import store
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.db import make_engine, make_sessionmaker, transaction
from services.kit.probes import free_port, wait_serving

SERVICES = ("segment", "delivery")
STREAMS_PER_CHANNEL = 100


def user_id(i: int) -> str:
    return f"user-{i:07d}"


class Services:
    """segment_svc and delivery_svc as subprocesses on SQLite in `data_dir` (fresh, empty)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in SERVICES}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.channels: list = []

    async def __aenter__(self) -> Services:
        env = dict(os.environ, HERALD_DATA_DIR=str(self.data_dir), HERALD_API_SECRET=SECRET,
                   HERALD_LOG_LEVEL="WARNING", HERALD_DELIVERY_METRICS_ADDR="off",
                   HERALD_SEGMENT_METRICS_ADDR="off",
                   **{f"HERALD_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in self.ports.items()})
        for name in SERVICES:
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}_svc", env=env,
                stderr=open(self.data_dir / f"{name}.log", "wb"))
        for name in SERVICES:
            await wait_serving(self.ports[name])
        return self

    def channel(self, name: str):
        channel = open_channel(f"127.0.0.1:{self.ports[name]}", token=make_token(SECRET, "bench"))
        self.channels.append(channel)
        return channel

    async def __aexit__(self, *exc) -> None:
        for channel in self.channels:
            await channel.close()
        await stop_all(self.processes.values())


async def setup(services: Services, recipients: int) -> str:
    directory = directory_service_pb2_grpc.DirectoryServiceStub(services.channel("segment"))
    segments = segment_service_pb2_grpc.SegmentServiceStub(services.channel("segment"))
    users = [directory_pb2.User(id="sender", name="The Sender")]
    users += [directory_pb2.User(id=user_id(i), name=f"User {i}") for i in range(recipients)]
    for start in range(0, len(users), 10_000):
        await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=users[start:start + 10_000]))
    segment = (await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_USER, name="everyone", all_users=True))).segment
    return segment.id


async def mark(deliveries) -> int:
    """A sequence to subscribe after: PublishEvent answers with its event's, once positioned."""
    event = delivery_pb2.Event(id="bench-mark", type="campaign.started", campaign=campaign_pb2.Campaign(id="mark"))
    response = await deliveries.PublishEvent(delivery_service_pb2.PublishEventRequest(event=event))
    return response.event.sequence


async def follow(stub, users: list[str], after: int, expected: int, arrivals: list[float],
                 ready: asyncio.Semaphore | None = None) -> int:
    """Reads a subscription until `expected` events came; appends when the last one came.
    Releases `ready` once the stream's headers came: the subscription holds."""
    call = stub.SubscribeEvents(message_service_pb2.SubscribeEventsRequest(user_ids=users, after_sequence=after))
    await call.initial_metadata()
    if ready is not None:
        ready.release()
    count = 0
    async for _ in call:
        count += 1
        if count == expected:
            arrivals.append(time.perf_counter())
            call.cancel()
            break
    return count


async def campaign_run(recipients: int, subscribers: int, data_dir: Path) -> dict:
    async with Services(data_dir) as services:
        segment_id = await setup(services, recipients)
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(services.channel("delivery"))
        message_stubs = [message_service_pb2_grpc.MessageServiceStub(services.channel("delivery"))
                         for _ in range(max(1, subscribers // STREAMS_PER_CHANNEL))]
        after = await mark(deliveries)
        step = max(1, recipients // max(1, subscribers))
        arrivals: list[float] = []
        ready = asyncio.Semaphore(0)
        followers = [asyncio.create_task(follow(message_stubs[n % len(message_stubs)], [user_id(n * step)], after,
                                                2, arrivals, ready)) for n in range(subscribers)]
        for _ in range(subscribers):  # every subscription holds before the campaign starts
            await ready.acquire()
        rss = PeakRss({"delivery": psutil.Process(services.processes["delivery"].pid)})
        cpu_before = rss.cpu()
        snapshot = campaign_pb2.Campaign(
            id="bench", name="bench", sender_id="sender", segment_ids=[segment_id], create_channels=True,
            channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}"),
            message_template=common_pb2.MessageTemplate(text=TEXT))
        with rss:
            t0 = time.perf_counter()
            await deliveries.StartDelivery(delivery_service_pb2.StartDeliveryRequest(campaign=snapshot))
            async for update in deliveries.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id="bench")):
                final = update.delivery
            completed = time.perf_counter()
            counts = Counter(await asyncio.gather(*followers))
        result = {"seconds": completed - t0, "cpu": rss.cpu()["delivery"] - cpu_before["delivery"],
                  "peak_rss": rss.peak["delivery"], "sent": final.stats.stats_messages_sent,
                  "lag": (max(arrivals) - completed) if arrivals else None, "complete": counts.get(2, 0)}
        if subscribers:
            result["catch_up"] = {n: await catch_up(message_stubs[0], n, step, after) for n in (1, subscribers)}
        return result


async def catch_up(stub, users: int, step: int, after: int) -> float:
    t0 = time.perf_counter()
    await follow(stub, [user_id(n * step) for n in range(users)], after, 2 * users, [])
    return time.perf_counter() - t0


async def scan_without_index(data_dir: Path, user: str, after: int) -> tuple[float, int]:
    """The same catch-up by reading the outbox: each event's user_ids matched as JSON."""
    engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'delivery.db'}")
    found = 0
    t0 = time.perf_counter()
    async with transaction(make_sessionmaker(engine)) as session:
        while rows := await store.events_after(session, after, 500, user_ids=[user]):
            found += len(rows)
            after = rows[-1].position
    seconds = time.perf_counter() - t0
    await engine.dispose()
    return seconds, found


async def run(recipients: int, subscribers: int) -> None:
    for count in (0, subscribers):
        # The data dir outlives the services (the scan without the index reads it), then goes.
        with tempfile.TemporaryDirectory(prefix="herald-inapp-bench-") as data_dir:
            result = await campaign_run(recipients, count, Path(data_dir))
            print(f"{count:5d} subscribers: sent {result['sent']} in {result['seconds']:.2f} s; delivery_svc CPU "
                  f"{result['cpu']:.2f} s, peak RSS {result['peak_rss'] / 2**20:.1f} MiB")
            if count:
                print(f"      {result['complete']} of {count} subscribers had both their events, the last one "
                      f"{result['lag']:+.2f} s from the campaign's completion")
                for users, seconds in result["catch_up"].items():
                    print(f"      catch-up from before the campaign for {users} users ({2 * users} events): "
                          f"{seconds * 1000:.0f} ms")
                seconds, found = await scan_without_index(Path(data_dir), user_id(0), 0)
                print(f"      the same for 1 user without the index (JSON scan of the outbox): "
                      f"{seconds * 1000:.0f} ms for {found} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--subscribers", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.recipients, args.subscribers))


if __name__ == "__main__":
    main()
