"""A 60,000-recipient campaign through the three real services, on SQLite or PostgreSQL, against the machine's raw limit.

    .venv/bin/python -m bench.delivery_bench [--recipients 60000] [--direct] [--runs 5]
        [--metrics both|on|off] [--postgres postgresql+asyncpg://herald@127.0.0.1:55499/postgres
        [--compare | --metrics on --delivery-replicas 1,2]]

Starts segment_svc, delivery_svc and campaign_svc as subprocesses (bench.processes.Services) on
SQLite in a temp dir, upserts the users and a sender, makes an all_users segment, creates a
campaign with create_channels, a 1-1 channel template and templated text, and times
StartCampaign → completed (WatchCampaign). `--direct` (or a campaign service that does not
answer yet) drives DeliveryService.StartDelivery / WatchDelivery instead, and says so. Prints
seconds, recipients/s and each service's peak RSS (sampled every 20 ms with psutil), plus the
RSS before the campaign, to show memory stays flat, and each service's CPU-seconds (user +
system) spent between StartCampaign and completion, per 1,000 recipients and their sum.
Right after each campaign, with the services stopped, it measures the machine's raw limit
(raw_sqlite_limit: Python's sqlite3 writing a channel, two members and a message for each of
200,000 recipients) and prints Herald's ratio to it. `--runs N` repeats the whole thing on
fresh services and prints each run's figures, then their median (the ratio: the median of the
runs' ratios). `--postgres URL` runs the services on new databases of that PostgreSQL server
(created per run, dropped after) and adds the server's own CPU-seconds during the campaign;
`--compare` runs the SQLite runs, then the PostgreSQL runs, and prints both medians side by
side with the PG/SQLite speed ratio (issue 11's target: ≥ 0.5). `--delivery-replicas 1,2` runs
with one delivery_svc, then two sharing the campaign (issue 12), and prints each replica's share
of the recipients (from its metrics) and every process's CPU. `--profile SERVICE` records
that service with py-spy during the campaign.

Metrics (`--metrics`, default `both`): `on` runs the services with their /metrics endpoints (the
default of a deployment) and scrapes each every SCRAPE_INTERVAL_S during the campaign, as a
Prometheus would (its default is 15 s), then checks the delivery counters against the stats;
`off` turns them off; `both` interleaves on and off runs (on/off, then off/on, …: drift on a
shared machine falls on both alike) and prints both medians and what metrics cost in CPU-seconds
(issue 14's budget: ≤ 3 %).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.segment.v1 import (directory_pb2, directory_service_pb2_grpc, segment_pb2, segment_service_pb2,
                               segment_service_pb2_grpc)
from bench.processes import SERVICES, Services, Usage, stop_all, upsert_users

TEXT = "Hi {{ receiver.name }}, {{ sender.name }} has news for you!"
RAW_RECIPIENTS = 200_000
RAW_PER_TRANSACTION = 1000
SCRAPE_INTERVAL_S = 5.0
METRICS_BUDGET = 0.03  # issue 14: metrics cost at most 3 % of the CPU-seconds
RAW_SCHEMA = """
CREATE TABLE channels(cid TEXT PRIMARY KEY, type, id, created_by_id, custom, created_at);
CREATE TABLE members(cid, user_id, channel_role, created_at, PRIMARY KEY (cid, user_id));
CREATE TABLE messages(id TEXT PRIMARY KEY, cid, user_id, text, custom, created_at);
"""


def raw_sqlite_limit(recipients: int = RAW_RECIPIENTS) -> tuple[float, float]:
    """The machine's raw limit: Python's sqlite3 writing what one recipient of the campaign is at
    the least (one channel, two members, one message) to a fresh WAL database with
    synchronous=NORMAL, executemany, RAW_PER_TRANSACTION recipients a transaction. The rows are
    built in the timed loop, as any writer builds them. Returns (recipients/s, seconds)."""
    with tempfile.TemporaryDirectory(prefix="herald-raw-") as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(RAW_SCHEMA)
        t0 = time.perf_counter()
        for start in range(0, recipients, RAW_PER_TRANSACTION):
            write_raw_batch(db, start, min(start + RAW_PER_TRANSACTION, recipients),
                            dt.datetime.now(dt.timezone.utc).isoformat())
        seconds = time.perf_counter() - t0
        db.close()
    return recipients / seconds, seconds


def write_raw_batch(db: sqlite3.Connection, first: int, end: int, now: str) -> None:
    """One transaction of the raw limit: recipients `first` to `end` (excluded)."""
    cids = [(f"messaging:user-{i:07d}-sender", f"user-{i:07d}", i) for i in range(first, end)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO channels VALUES (?, ?, ?, ?, ?, ?)",
                   [(cid, "messaging", cid[10:], "sender", "{}", now) for cid, _, _ in cids])
    db.executemany("INSERT INTO members VALUES (?, ?, ?, ?)",
                   [row for cid, user, _ in cids
                    for row in ((cid, user, "channel_member", now), (cid, "sender", "owner", now))])
    db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                   [(uuid.uuid4().hex, cid, "sender", f"Hi User {i}, The Sender has news for you!", "{}", now)
                    for cid, _, i in cids])
    db.execute("COMMIT")


@dataclass
class Figures:
    """One run's figures (or their median): wall time, the CPU each service (and, on PostgreSQL,
    the server) spent on the campaign, each service's peak RSS, the raw limit measured after it
    and Herald's ratio to that limit."""
    recipients: int
    seconds: float
    cpu: dict[str, float]  # per service process; "postgres" too on PostgreSQL
    peak_rss: dict[str, float]  # bytes
    raw_rate: float  # raw_sqlite_limit's recipients/s
    ratio: float  # recipients/s ÷ raw_rate
    shares: dict[str, float] = field(default_factory=dict)  # delivery replicas: each one's part of the recipients

    @property
    def processes(self) -> list[str]:
        return list(self.peak_rss)

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds

    def per_thousand(self, name: str) -> float:
        return self.cpu[name] / self.recipients * 1000

    @property
    def cpu_per_thousand(self) -> float:
        """The three services' CPU-seconds per 1,000 recipients."""
        return sum(self.per_thousand(name) for name in self.processes)

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) of every figure, in the order they print."""
        fields = [("seconds", f"{self.seconds:.2f}"), ("recipients/s", f"{self.rate:,.0f}")]
        fields += [(f"CPU s/1,000 {name}", f"{self.per_thousand(name):.3f}") for name in self.processes]
        fields.append(("CPU s/1,000 total", f"{self.cpu_per_thousand:.3f}"))
        if "postgres" in self.cpu:
            fields.append(("CPU s/1,000 postgres", f"{self.per_thousand('postgres'):.3f}"))
            fields.append(("CPU s/1,000 with postgres", f"{self.cpu_per_thousand + self.per_thousand('postgres'):.3f}"))
        fields += [(f"peak RSS MiB {name}", f"{self.peak_rss[name] / 2**20:.0f}") for name in self.processes]
        fields += [(f"share {name}", f"{share:.0%}") for name, share in self.shares.items()]
        fields += [("raw recipients/s", f"{self.raw_rate:,.0f}"), ("ratio to raw", f"{self.ratio:.3f}")]
        return fields

    def line(self) -> str:
        return "  ".join(f"{label} {value}" for label, value in self.fields())


def median(runs: list[Figures]) -> Figures:
    return Figures(runs[0].recipients, statistics.median(r.seconds for r in runs),
                   {name: statistics.median(r.cpu[name] for r in runs) for name in runs[0].cpu},
                   {name: statistics.median(r.peak_rss[name] for r in runs) for name in runs[0].processes},
                   statistics.median(r.raw_rate for r in runs), statistics.median(r.ratio for r in runs),
                   {name: statistics.median(r.shares[name] for r in runs) for name in runs[0].shares})


def side_by_side(columns: dict[str, Figures]) -> str:
    """Medians as a table, a column each."""
    fields = {title: dict(figures.fields()) for title, figures in columns.items()}
    labels = list(dict.fromkeys(label for f in fields.values() for label in f))
    rows = [f"{'':30s}" + "".join(f" {title:>14s}" for title in columns)]
    rows += [f"{label:30s}" + "".join(f" {f.get(label, '-'):>14s}" for f in fields.values()) for label in labels]
    return "\n".join(rows)


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of a /metrics endpoint: {(sample name, sorted labels): value}."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(url, timeout=10)).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape_every(services: Services, interval_s: float) -> None:
    """What a Prometheus does: each service's /metrics, every `interval_s`, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        for name in services.names:
            await scrape(services.metrics_url(name))


async def run(recipients: int, direct: bool, batch_size: int, profile: str = "", postgres: str = "",
              metrics: bool = True, delivery_replicas: int = 1) -> Figures:
    # A profile is written into the data dir: keep it then.
    services = Services(postgres=postgres, env={"HERALD_DELIVERY_BATCH_SIZE": str(batch_size)}, keep=bool(profile),
                        metrics=metrics, delivery_replicas=delivery_replicas)
    async with services:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(services.channels["segment"])
        segments = segment_service_pb2_grpc.SegmentServiceStub(services.channels["segment"])
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(services.channels["campaign"])
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(services.channels["delivery"])

        t0 = time.perf_counter()
        await upsert_users(directory, [directory_pb2.User(id="sender", name="The Sender")])
        await upsert_users(directory, (directory_pb2.User(id=f"user-{i:07d}", name=f"User {i}")
                                       for i in range(recipients)))
        segment = (await segments.CreateSegment(segment_service_pb2.CreateSegmentRequest(
            type=segment_pb2.SEGMENT_TYPE_USER, name="everyone", all_users=True))).segment
        where = f"PostgreSQL ({postgres.rsplit('@', 1)[-1].rsplit('/', 1)[0]})" if postgres else "SQLite"
        print(f"setup on {where}: {recipients + 1} users upserted, segment {segment.id} in "
              f"{time.perf_counter() - t0:.1f} s")

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
        profiler = await start_profiler(services.processes[profile].pid, services.data_dir / f"{profile}.pyspy.txt") \
            if profile else None
        scraper = asyncio.create_task(scrape_every(services, SCRAPE_INTERVAL_S)) if metrics else None
        with Usage(services) as usage:
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
            if scraper is not None:
                scraper.cancel()
                await asyncio.gather(scraper, return_exceptions=True)
        if profiler is not None:
            await stop_all([profiler], signal.SIGINT)
        if metrics:
            replicas = [name for name in services.names if name.startswith("delivery")]
            counts = {name: await scrape(services.metrics_url(name)) for name in replicas}
            outcomes = {o: sum(c.get(("herald_delivery_recipients_total", (("outcome", o),)), 0.0)
                               for c in counts.values()) for o in ("sent", "skipped", "failed")}
            written = {name: sum(v for (sample, _), v in c.items() if sample == "herald_delivery_recipients_total")
                       for name, c in counts.items()}
            shares = {name: n / recipients for name, n in written.items()} if len(replicas) > 1 else {}
            for name, share in shares.items():
                print(f"share of the recipients written by {name}: {share:.1%}")
            print(f"metrics: delivery_svc counted sent {outcomes['sent']:.0f}, skipped {outcomes['skipped']:.0f}, "
                  f"failed {outcomes['failed']:.0f}")
            assert (outcomes["sent"], outcomes["skipped"], outcomes["failed"]) == (
                stats.stats_messages_sent, stats.recipients_skipped, stats.recipients_failed), "metrics ≠ stats"
    path = "StartCampaign → WatchCampaign completed" if use_campaigns else \
        "StartDelivery → WatchDelivery completed (campaign_svc not used)"
    print(f"path: {path}")
    print(f"status: {status}; messages sent {stats.stats_messages_sent}, channels created "
          f"{stats.stats_channels_created}, skipped {stats.recipients_skipped}, failed {stats.recipients_failed}")
    print(f"recipients: {recipients}  seconds: {seconds:.2f}  recipients/s: {recipients / seconds:,.0f}")
    cpu = usage.spent
    for name in services.names:
        print(f"peak RSS {name:10s}: {usage.peak[name] / 2**20:7.1f} MiB  (before the campaign: "
              f"{usage.before[name] / 2**20:.1f} MiB); CPU {cpu[name]:.2f} s")
    if "postgres" in cpu:
        print(f"PostgreSQL server CPU: {cpu['postgres']:.2f} s")
    # The services are stopped: the raw limit has the machine to itself, right after the campaign.
    raw_rate, raw_seconds = raw_sqlite_limit()
    print(f"raw limit (sqlite3, {RAW_RECIPIENTS:,} recipients of a channel, 2 members and a message): "
          f"{raw_rate:,.0f} recipients/s ({raw_seconds:.2f} s)")
    figures = Figures(recipients, seconds, cpu, dict(usage.peak), raw_rate, recipients / seconds / raw_rate,
                      shares if metrics else {})
    print(f"this run: {figures.line()}", flush=True)
    return figures


async def start_profiler(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy (the dev extra's, beside this Python) sampling a service during the campaign only,
    its collapsed stacks written to `out` when stopped."""
    print(f"profiling pid {pid} into {out}")
    py_spy = Path(sys.executable).parent / "py-spy"
    profiler = await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--format", "raw", "--rate", "250", "--pid", str(pid), "-o", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # py-spy attaches
    return profiler


def series(args: argparse.Namespace, postgres: str, metrics: str = "on", delivery_replicas: int = 1) -> Figures:
    """`--runs` runs on fresh services; prints each run's figures and their median when more than
    one. `metrics` "both": each run with metrics on and off, in alternating order; prints both
    medians and the share of CPU-seconds metrics cost; returns the median with metrics on."""
    modes = ["on", "off"] if metrics == "both" else [metrics]
    runs: dict[str, list[Figures]] = {mode: [] for mode in modes}
    for i in range(1, args.runs + 1):
        for mode in modes if i % 2 else modes[::-1]:
            print(f"-- run {i} of {args.runs}" + (f", metrics {mode}" if len(modes) > 1 else ""), flush=True)
            runs[mode].append(asyncio.run(run(args.recipients, args.direct, args.batch_size, args.profile, postgres,
                                              metrics=mode == "on", delivery_replicas=delivery_replicas)))
    where = "PostgreSQL" if postgres else "SQLite"
    if delivery_replicas > 1:
        where += f", {delivery_replicas} delivery replicas"
    if args.runs > 1 or len(modes) > 1:
        for mode in modes:
            print(f"== {args.runs} runs of {args.recipients} recipients on {where}, metrics {mode}")
            for i, figures in enumerate(runs[mode], 1):
                print(f"run {i}:  {figures.line()}")
            print(f"median: {median(runs[mode]).line()}", flush=True)
    if len(modes) > 1:
        on, off = median(runs["on"]), median(runs["off"])
        cost = on.cpu_per_thousand / off.cpu_per_thousand - 1
        print(f"== metrics on vs off (medians of {args.runs}): CPU s/1,000 total {on.cpu_per_thousand:.3f} on, "
              f"{off.cpu_per_thousand:.3f} off: metrics cost {cost:+.1%} (budget: ≤ {METRICS_BUDGET:.0%}); "
              f"recipients/s {on.rate:,.0f} on, {off.rate:,.0f} off", flush=True)
    return median(runs[modes[0]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--direct", action="store_true", help="drive StartDelivery instead of StartCampaign")
    parser.add_argument("--batch-size", type=int, default=1000, help="HERALD_DELIVERY_BATCH_SIZE")
    parser.add_argument("--profile", choices=SERVICES, default="", help="run one service under py-spy record")
    parser.add_argument("--runs", type=int, default=1, help="repeat on fresh services; print each run and the median")
    parser.add_argument("--postgres", default="", metavar="URL",
                        help="run the services on new databases of this PostgreSQL server "
                             "(postgresql+asyncpg://USER@HOST:PORT/postgres)")
    parser.add_argument("--compare", action="store_true", help="the runs on SQLite, then on --postgres, side by side")
    parser.add_argument("--metrics", choices=("both", "on", "off"), default="both",
                        help="the services' /metrics on (scraped every 5 s), off, or both interleaved with "
                             "what they cost (default: both)")
    parser.add_argument("--delivery-replicas", default="", metavar="N,M",
                        help="with --postgres: runs with N delivery_svc replicas, then with M, …, side by side "
                             "(each replica's share of the recipients from its metrics)")
    args = parser.parse_args()
    if (args.compare or args.delivery_replicas) and not args.postgres:
        parser.error("--compare and --delivery-replicas need --postgres URL")
    if args.delivery_replicas:
        if args.metrics != "on":
            parser.error("--delivery-replicas takes --metrics on (the replicas' shares come from their metrics)")
        counts = [int(n) for n in args.delivery_replicas.split(",")]
        medians = {f"{n} replica(s)": series(args, args.postgres, "on", n) for n in counts}
        print(f"== medians of {args.runs} run(s) of {args.recipients} recipients on PostgreSQL")
        print(side_by_side(medians))
        return
    if not args.compare:
        series(args, args.postgres, args.metrics)
        return
    if args.metrics == "both":
        parser.error("--compare takes --metrics on or off")
    print("== SQLite", flush=True)
    sqlite = series(args, "", args.metrics)
    print("== PostgreSQL", flush=True)
    postgres = series(args, args.postgres, args.metrics)
    print(f"== medians of {args.runs} run(s) of {args.recipients} recipients")
    print(side_by_side({"SQLite": sqlite, "PostgreSQL": postgres}))
    print(f"PG/SQLite speed (recipients/s): {postgres.rate / sqlite.rate:.2f} (issue 11's target: ≥ 0.5)")


if __name__ == "__main__":
    main()
