"""Segment service benchmark: import N users, stream an N-recipient audience from three
overlapping segments, and watch the service's memory.

    .venv/bin/python -m bench.segment_bench [--users 1000000] [--batch 1000]

The service runs as a real subprocess (`python -m services.segment_svc`, SQLite in a temporary
data dir). Prints users/s for ImportUsers, how long the filter segment's size took to appear,
recipients/s for StreamRecipients (checking the count, the order and that nothing repeats),
and the service's peak RSS per phase and overall (sampled every 50 ms with psutil).
Targets (issue #3, 2-core machine, nothing else running): import ≥ 50,000 users/s, stream
≥ 200,000 recipients/s, service RSS < 200 MB throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil
from google.protobuf import struct_pb2

from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds
from herald.segment.v1 import segment_pb2, segment_service_pb2 as ss, segment_service_pb2_grpc
from services.kit.probes import free_port, wait_serving
from services.kit.auth import make_token
from services.kit.clients import open_channel

CHUNK = 10_000
MANUAL_EVERY = 10  # the manual segment holds every 10th user (100k of 1M)
IMPORT_METHOD = "/herald.segment.v1.DirectoryService/ImportUsers"


class RssSampler(threading.Thread):
    """Samples a process's resident memory; keeps the peak overall and per phase."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self.phase_peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.phase_peak = max(self.phase_peak, rss)
            time.sleep(self.every_s)

    def phase(self) -> float:
        """Peak MB since the previous call."""
        peak, self.phase_peak = self.phase_peak, 0
        return peak / 2**20


def start_service(data_dir: Path, port: int, secret: str) -> subprocess.Popen:
    env = dict(os.environ, HERALD_DATA_DIR=str(data_dir), HERALD_SEGMENT_ADDR=f"127.0.0.1:{port}",
               HERALD_API_SECRET=secret, HERALD_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "services.segment_svc"], env=env,
                            stderr=open(data_dir / "segment.log", "wb"))


def make_chunks(n: int) -> list[bytes]:
    """The import stream, serialized up front so the client's CPU is not in the measurement."""
    chunks = []
    for start in range(0, n, CHUNK):
        users = []
        for i in range(start, min(n, start + CHUNK)):
            user = directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}", role="user", teams=["blue"])
            user.custom.update({"country": "NL" if i % 2 else "DE", "age": 18 + i % 60, "plan": "pro"})
            users.append(user)
        chunks.append(ds.ImportUsersRequest(users=users).SerializeToString())
    return chunks


async def run(n: int, batch: int) -> None:
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="segment-bench-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        service = start_service(data_dir, port, secret)
        sampler = RssSampler(service.pid)
        sampler.start()
        channel = open_channel(f"127.0.0.1:{port}", token=make_token(secret, "bench"))
        try:
            await wait_serving(port)
            print(f"service pid {service.pid}, idle RSS {sampler.phase():.0f} MB")
            await bench(channel, sampler, n, batch)
        finally:
            await channel.close()
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            sampler.running = False
    print(f"peak service RSS overall: {sampler.peak / 2**20:.0f} MB (target < 200 MB)")


async def bench(channel: grpc.aio.Channel, sampler: RssSampler, n: int, batch: int) -> None:
    segments = segment_service_pb2_grpc.SegmentServiceStub(channel)

    print(f"building {n:,} users client-side ...", flush=True)
    chunks = make_chunks(n)
    import_users = channel.stream_unary(IMPORT_METHOD, request_serializer=None,
                                        response_deserializer=ds.ImportUsersResponse.FromString)

    async def stream_chunks(chunks):
        for chunk in chunks:
            yield chunk

    sampler.phase()
    started = time.perf_counter()
    reply = await import_users(stream_chunks(chunks))
    took = time.perf_counter() - started
    assert reply.imported_count == n, reply
    print(f"import: {n:,} users in {took:.1f} s = {n / took:,.0f} users/s (target ≥ 50,000); "
          f"peak RSS {sampler.phase():.0f} MB")
    del chunks

    country = struct_pb2.Struct()
    country.update({"country": "NL"})
    made = time.perf_counter()
    nl = (await segments.CreateSegment(ss.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_USER, name="NL", filter=country))).segment.id
    everyone = (await segments.CreateSegment(ss.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_USER, name="everyone", all_users=True))).segment.id
    manual = (await segments.CreateSegment(ss.CreateSegmentRequest(
        type=segment_pb2.SEGMENT_TYPE_USER, name="manual"))).segment.id
    targets = [f"user-{i:07d}" for i in range(0, n, MANUAL_EVERY)]
    for start in range(0, len(targets), 10_000):
        await segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=manual, target_ids=targets[start:start + 10_000]))
    print(f"segments: filter (country=NL), all_users, manual ({len(targets):,} targets added in "
          f"{time.perf_counter() - made:.1f} s)")
    while (await segments.GetSegment(ss.GetSegmentRequest(id=nl))).segment.size != (n // 2):
        await asyncio.sleep(0.1)
    print(f"filter segment size {n // 2:,} appeared {time.perf_counter() - made:.1f} s after creation")

    segment_ids = [nl, everyone, manual]
    started = time.perf_counter()
    total = (await segments.CountRecipients(ss.CountRecipientsRequest(segment_ids=segment_ids))).count
    print(f"count: {total:,} recipients in {time.perf_counter() - started:.2f} s")
    assert total == n, total

    sampler.phase()
    streamed, previous, batches = 0, "", 0
    started = time.perf_counter()
    async for reply in segments.StreamRecipients(ss.StreamRecipientsRequest(segment_ids=segment_ids,
                                                                           batch_size=batch)):
        batches += 1
        ids = [r.target_id for r in reply.recipients]
        assert not reply.skipped_ids and ids and ids[0] > previous and ids == sorted(set(ids)), "order/dedupe"
        previous = ids[-1]
        streamed += len(ids)
    took = time.perf_counter() - started
    assert streamed == n, streamed
    print(f"stream: {streamed:,} recipients in {batches:,} batches of {batch} in {took:.1f} s = "
          f"{streamed / took:,.0f} recipients/s (target ≥ 200,000); ordered, no duplicates; "
          f"peak RSS {sampler.phase():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000, help="StreamRecipients batch_size")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  (figures are noisy when other work shares the machine)")
    asyncio.run(run(args.users, args.batch))


if __name__ == "__main__":
    main()
