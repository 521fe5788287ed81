"""The Python client's overhead: `HeraldClient.get_campaign` and `query_campaigns` against the raw
generated stub calls on the same channel.

    .venv/bin/python -m bench.client_bench [--calls 2000] [--rounds 40] [--campaigns 20]

The three services run as subprocesses on SQLite (bench.processes.Services), so this process
holds only the caller: its CPU time is the client's and grpc's own. After `--campaigns` drafts
are created, each method is called `--calls` times in sequence through the client and as many
times through the raw stub (`herald.campaigns.GetCampaign(GetCampaignRequest(id=…))`, the
request built per call as a caller writes it), split into `--rounds` rounds that alternate
which goes first, so drift of the shared machine falls on both. Prints per call, for each:
wall µs (time.perf_counter, the round trip through the service) and CPU µs of this process
(time.process_time), then client / raw. Issue 13's target: the client within 10 % of the raw
call (the wall ratio ≤ 1.10). A third pair, `get_segment`, is a call served without upstream calls
(GetCampaign reads the users from segment_svc too), where the client's own cost shows more.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable

from google.protobuf import struct_pb2

from bench.processes import Services
from herald.campaign.v1 import campaign_service_pb2 as cs
from herald.common.v1 import common_pb2
from herald.segment.v1 import segment_service_pb2 as ss
from services.client import HeraldClient

Call = Callable[[int], Awaitable[object]]


async def timed(call: Call, count: int) -> tuple[float, float]:
    """Wall and CPU seconds of `count` sequential calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        await call(i)
    return time.perf_counter() - wall, time.process_time() - cpu


async def compare(name: str, client_call: Call, raw_call: Call, calls: int, rounds: int) -> None:
    """Rounds of client calls and raw calls, alternating which goes first; prints per call the
    totals' figures and the median of the rounds' wall ratios (drift between rounds cancels)."""
    await timed(client_call, 50)  # warm both paths up: connections, caches, first-use imports
    await timed(raw_call, 50)
    per_round = max(1, calls // rounds)
    times: dict[str, list[tuple[float, float]]] = {"client": [], "raw": []}
    for r in range(rounds):
        order = [("client", client_call), ("raw", raw_call)]
        for kind, call in order if r % 2 == 0 else reversed(order):
            times[kind].append(await timed(call, per_round))
    n = per_round * rounds
    client_wall, client_cpu = (sum(t[i] for t in times["client"]) for i in (0, 1))
    raw_wall, raw_cpu = (sum(t[i] for t in times["raw"]) for i in (0, 1))
    median = statistics.median(c[0] / r[0] for c, r in zip(times["client"], times["raw"]))
    print(f"{name}: {n} calls each way; client {client_wall / n * 1e6:.0f} µs wall, {client_cpu / n * 1e6:.0f} µs "
          f"CPU; raw stub {raw_wall / n * 1e6:.0f} µs wall, {raw_cpu / n * 1e6:.0f} µs CPU; client/raw wall "
          f"{client_wall / raw_wall:.3f} (median of rounds {median:.3f}), CPU {client_cpu / raw_cpu:.3f}", flush=True)


def status_filter() -> struct_pb2.Struct:
    fields = struct_pb2.Struct()
    fields.update({"status": "draft"})
    return fields


async def run(calls: int, rounds: int, campaigns: int) -> None:
    services = Services(prefix="herald-client-bench-")
    try:
        async with services:
            herald = HeraldClient(segment_addr=services.addr("segment"), campaign_addr=services.addr("campaign"),
                                  delivery_addr=services.addr("delivery"), token=services.token)
            try:
                await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
                ids = [(await herald.create_campaign(
                    id=f"bench-{i}", name=f"Bench {i}", sender_id="boss", user_ids=["ann"],
                    message_template={"text": "Hi {{ receiver.name }}"})).id for i in range(campaigns)]
                await herald.create_segment("user", id="everyone", name="Everyone", all_users=True)

                async def client_get(i: int) -> object:
                    return await herald.get_campaign(ids[i % len(ids)])

                async def raw_get(i: int) -> object:
                    return await herald.campaigns.GetCampaign(cs.GetCampaignRequest(id=ids[i % len(ids)]), timeout=30)

                async def client_query(i: int) -> object:
                    return await herald.query_campaigns({"status": "draft"}, sort=["-created_at"], limit=10)

                async def raw_query(i: int) -> object:
                    return await herald.campaigns.QueryCampaigns(cs.QueryCampaignsRequest(
                        filter=status_filter(), sort=[common_pb2.SortParam(field="created_at", direction=-1)],
                        limit=10), timeout=30)

                async def client_segment(i: int) -> object:
                    return await herald.get_segment("everyone")

                async def raw_segment(i: int) -> object:
                    return await herald.segments.GetSegment(ss.GetSegmentRequest(id="everyone"), timeout=30)

                await compare("get_campaign", client_get, raw_get, calls, rounds)
                await compare("query_campaigns", client_query, raw_query, calls, rounds)
                await compare("get_segment", client_segment, raw_segment, calls, rounds)
            finally:
                await herald.close()
    finally:
        shutil.rmtree(services.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each method, each way")
    parser.add_argument("--rounds", type=int, default=40, help="rounds the calls are split into")
    parser.add_argument("--campaigns", type=int, default=20, help="draft campaigns created first")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds, args.campaigns))


if __name__ == "__main__":
    main()
