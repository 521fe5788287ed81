"""Hostile input against the three services as separate processes (SQLite): campaigns whose
templates are hostile, then a burst of malformed requests, while a separate task asks each
service's grpc.health.v1 Health.Check every 50 ms.

    .venv/bin/python -m bench.hostile_bench [--recipients 20] [--burst 3] [--timeout 60]

Each hostile template is created (CreateCampaign, within --timeout) and, if accepted, started
and followed to its end (within --timeout, then stopped): what each step answered, how long it
took and the campaign's sent / failed counts. The burst sends crafted requests (filters past
every budget, Structs too deep to decode, non-finite numbers, out-of-range timestamps, forged
cursors, strings up to the 16 MiB message limit, pages of users with huge fields), 8 in flight,
and counts the answers by kind. Prints each service's peak memory (VmHWM of its process; target
< 512 MB) and worst health-check latency (target < 1 s). Every wait is bounded, so the bench
finishes and says what it saw even where the services do not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from bench.processes import stop_all
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.limits import MAX_MESSAGE_BYTES
from services.kit.probes import free_port, wait_serving

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
SERVICES = ("segment", "delivery", "campaign")
HEALTH_EVERY_S = 0.05
HEALTH_DEADLINE_S = 120.0  # a health check slower than this counts as this long
IN_FLIGHT = 8  # burst requests at once
TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)

# The kinds of DESIGN §10.3's template budget: refused at create, or failing only their recipients.
HOSTILE_TEMPLATES = {
    "constant blow-up": "{{ 'x' * 10**9 }}",
    "nested loops": "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}done",
    "mutation of shared objects": "{{ sender.teams.extend(sender.teams) }}{{ sender.teams | length }}",
    "repetition of receiver data": "{{ receiver.name * 100000000 }}",
}


@dataclass
class Health:
    """The worst Health.Check latency per service, checked every HEALTH_EVERY_S."""

    worst: dict[str, float] = field(default_factory=dict)
    checks: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    async def watch(self, name: str, port: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                started = time.perf_counter()
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_DEADLINE_S)
                except grpc.aio.AioRpcError:
                    self.failed[name] += 1
                latency = time.perf_counter() - started
                self.worst[name] = max(self.worst.get(name, 0.0), latency)
                self.checks[name] += 1
                await asyncio.sleep(HEALTH_EVERY_S)


def peak_mb(pid: int) -> float:
    """VmHWM: the most memory the process ever had resident (NaN once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return math.nan
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Stubs:
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(channels["segment"])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(channels["segment"])
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels["campaign"])
        self.deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(channels["delivery"])


async def seed(stubs: Stubs, recipients: int) -> list[str]:
    user_ids = [f"user-{i:05d}" for i in range(recipients)]
    await stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id="sender", name="The Sender", teams=["red", "blue"]),
        *(directory_pb2.User(id=user_id, name=f"User {user_id}") for user_id in user_ids)]))
    return user_ids


async def hostile_campaign(stubs: Stubs, kind: str, text: str, user_ids: list[str], timeout_s: float) -> str:
    """Creates, starts and follows one campaign; says what happened at each step."""
    started = time.perf_counter()
    try:
        created = await stubs.campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(
            name=kind, sender_id="sender", user_ids=user_ids, create_channels=True,
            channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-hostile"),
            message_template=common_pb2.MessageTemplate(text=text)), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return f"create → {exc.code().name} in {time.perf_counter() - started:.2f} s ({exc.details()[:120]})"
    created_s = time.perf_counter() - started
    campaign_id = created.campaign.id
    await stubs.campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=campaign_id), timeout=timeout_s)
    sent_at = time.perf_counter()
    last = None
    try:
        async with asyncio.timeout(timeout_s):
            async for update in stubs.campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=campaign_id)):
                last = update.campaign
    except (TimeoutError, grpc.aio.AioRpcError) as exc:
        await stubs.campaigns.StopCampaign(campaign_service_pb2.StopCampaignRequest(id=campaign_id), timeout=timeout_s)
        return f"created in {created_s:.2f} s; sending not done after {time.perf_counter() - sent_at:.0f} s " \
               f"({type(exc).__name__}): stopped"
    stats = last.stats if last else campaign_pb2.CampaignStats()
    status = campaign_pb2.CampaignStatus.Name(last.status) if last else "?"
    return (f"created in {created_s:.2f} s; {status} in {time.perf_counter() - sent_at:.2f} s, "
            f"sent {stats.stats_messages_sent}, failed {stats.recipients_failed}")


def struct(data: dict) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(data)
    return value


def deep_filter_request(levels: int) -> directory_service_pb2.QueryUsersRequest:
    """A filter nested past what protobuf decodes (built in place: copying it would fail here)."""
    request = directory_service_pb2.QueryUsersRequest()
    nested: dict = {"name": "x"}
    for _ in range(levels):
        nested = {"$and": [nested]}
    request.filter.update(nested)
    return request


def forged_cursor() -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": [[1e308, "x" * 200]] * 50, "f": "forged"}).encode()).decode()


def burst_requests(stubs: Stubs) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    """(kind, call) pairs: each kind once per round of the burst."""
    big = "x" * (MAX_MESSAGE_BYTES - 4096)  # just under the 16 MiB message limit
    huge_name = "y" * (MAX_MESSAGE_BYTES // 14)  # 12 of them fit one upsert
    never = timestamp_pb2.Timestamp(seconds=2**62)
    d = stubs.directory
    return [
        ("filter: 10,001 $in values", lambda: d.QueryUsers(directory_service_pb2.QueryUsersRequest(
            filter=struct({"id": {"$in": [str(i) for i in range(10_001)]}})))),
        ("filter: 5,000 custom clauses", lambda: d.QueryUsers(directory_service_pb2.QueryUsersRequest(
            filter=struct({f"k{i}": i for i in range(5_000)})))),
        ("filter: 101 $or clauses", lambda: d.QueryChannels(directory_service_pb2.QueryChannelsRequest(
            filter=struct({"$or": [{"team": str(i)} for i in range(101)]})))),
        ("filter: 15 levels of $and", lambda: d.QueryUsers(deep_filter_request(15))),
        ("filter: 40 levels of $and (undecodable)", lambda: d.QueryUsers(deep_filter_request(40))),
        ("filter: over 4 MiB", lambda: stubs.segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
            type=segment_pb2.SEGMENT_TYPE_USER, name="big", filter=struct({"name": {"$in": ["z" * 1000] * 4_300}})))),
        ("custom: NaN and Infinity", lambda: d.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
            directory_pb2.User(id="nan-user", custom=struct({"score": math.nan, "rank": -math.inf}))]))),
        ("timestamp out of range", lambda: stubs.deliveries.PublishEvent(delivery_service_pb2.PublishEventRequest(
            event=delivery_pb2.Event(id="bad-time", type="campaign.started", created_at=never,
                                     campaign=campaign_pb2.Campaign(id="x"))))),
        ("forged cursor", lambda: d.QueryUsers(directory_service_pb2.QueryUsersRequest(next=forged_cursor()))),
        ("template text under 16 MiB", lambda: stubs.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(name="big", sender_id="sender", user_ids=["user-00000"],
                                                       message_template=common_pb2.MessageTemplate(text=big)))),
        ("user name under 16 MiB", lambda: d.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
            directory_pb2.User(id="big-name", name=big)]))),
        ("12 more users of 1.2 MiB names, then a page of all", lambda: _upsert_then_page(d, huge_name)),
    ]


_huge_users = itertools.count()


async def _upsert_then_page(directory: directory_service_pb2_grpc.DirectoryServiceStub, name: str) -> object:
    """Each valid alone; together, a page of users far over the message limit."""
    await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id=f"huge-{next(_huge_users):05d}", name=name) for _ in range(12)]))
    return await directory.QueryUsers(directory_service_pb2.QueryUsersRequest(
        filter=struct({"id": {"$gte": "huge-"}}), limit=1000))


async def burst(stubs: Stubs, rounds: int, timeout_s: float) -> dict[str, Counter[str]]:
    """Sends every kind `rounds` times, IN_FLIGHT at once; the answers by kind."""
    answers: dict[str, Counter[str]] = {}
    limit = asyncio.Semaphore(IN_FLIGHT)
    kinds = burst_requests(stubs)

    async def one(kind: str, call: Callable[[], Awaitable[object]]) -> None:
        async with limit:
            try:
                await asyncio.wait_for(call(), timeout_s)
                answer = "OK"
            except grpc.aio.AioRpcError as exc:
                answer = exc.code().name
            except TimeoutError:
                answer = f"no answer in {timeout_s:g} s"
            answers.setdefault(kind, Counter())[answer] += 1

    await asyncio.gather(*(one(kind, call) for _ in range(rounds) for kind, call in kinds))
    return answers


def _peaks(processes: dict[str, asyncio.subprocess.Process], health: Health) -> str:
    """Each service's peak memory and worst health check so far (what each step added)."""
    return "so far " + ", ".join(f"{name} {peak_mb(process.pid):.0f} MB / {health.worst.get(name, 0) * 1000:.0f} ms"
                                 for name, process in processes.items())


async def main_async(recipients: int, rounds: int, timeout_s: float) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="herald-hostile-bench-"))
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ, HERALD_DATA_DIR=str(data_dir), HERALD_API_SECRET=SECRET, HERALD_LOG_LEVEL="WARNING",
               **{f"HERALD_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()})
    processes: dict[str, asyncio.subprocess.Process] = {}
    health = Health()
    try:
        for name in SERVICES:
            processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}_svc", env=env, stderr=open(data_dir / f"{name}.log", "wb"))
        for name in SERVICES:
            await wait_serving(ports[name])
        watchers = [asyncio.create_task(health.watch(name, port)) for name, port in ports.items()]
        token = make_token(SECRET, "bench")
        channels = {name: open_channel(f"127.0.0.1:{port}", token=token) for name, port in ports.items()}
        stubs = Stubs(channels)
        user_ids = await seed(stubs, recipients)
        print(f"services started; {recipients} recipients; logs in {data_dir} (removed at the end)", flush=True)
        for kind, text in HOSTILE_TEMPLATES.items():
            print(f"template, {kind}: {await hostile_campaign(stubs, kind, text, user_ids, timeout_s)}; "
                  f"{_peaks(processes, health)}", flush=True)
        started = time.perf_counter()
        answers = await burst(stubs, rounds, timeout_s)
        print(f"burst: {sum(sum(c.values()) for c in answers.values())} malformed requests in "
              f"{time.perf_counter() - started:.1f} s; {_peaks(processes, health)}", flush=True)
        for kind, counts in answers.items():
            print(f"  {kind}: {dict(counts)}")
        for watcher in watchers:
            watcher.cancel()
        for channel in channels.values():
            await channel.close()
        for name in SERVICES:
            alive = processes[name].returncode is None
            print(f"{name}_svc: peak memory {peak_mb(processes[name].pid):.0f} MB (target < 512), worst health "
                  f"check {health.worst.get(name, math.nan) * 1000:.0f} ms (target < 1000) over "
                  f"{health.checks[name]} checks, {health.failed[name]} failed" + ("" if alive else "; EXITED"))
    finally:
        await stop_all(processes.values())
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20, help="of each hostile campaign")
    parser.add_argument("--burst", type=int, default=3, help="rounds of the malformed-request burst (every kind)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one step may take")
    args = parser.parse_args()
    asyncio.run(main_async(args.recipients, args.burst, args.timeout))


if __name__ == "__main__":
    main()
