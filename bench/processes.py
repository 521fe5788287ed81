"""What the benchmarks share about the service processes they start: the three services as
subprocesses on fresh databases (SQLite in a temp dir, or new PostgreSQL databases), their
memory and CPU, and the PostgreSQL server's CPU."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

import psutil

from herald.segment.v1 import directory_service_pb2
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.limits import MAX_USERS_PER_CALL
from services.kit.probes import free_port, wait_serving

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OWFi"  # given: PostgreSQL requires both
SERVICES = ("segment", "delivery", "campaign")


async def stop_all(processes: Iterable[asyncio.subprocess.Process], sig: int = signal.SIGTERM) -> None:
    """Signals every process still running, waits up to 15 s for each, then kills what is left."""
    processes = list(processes)
    for process in processes:
        if process.returncode is None:
            process.send_signal(sig)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()


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


class Usage(PeakRss):
    """PeakRss of the services over one phase (`with Usage(services):` in a running loop), with
    their RSS before it (`before`) and the CPU-seconds each spent in it (`spent`), the PostgreSQL
    server's too ("postgres") when they run on PostgreSQL."""

    def __init__(self, services: Services) -> None:
        super().__init__(services.watched())
        self.services = services
        self.before: dict[str, int] = {}
        self.spent: dict[str, float] = {}

    def __enter__(self):
        self.before, self._cpu, self._database = self.now(), self.cpu(), self.services.database_cpu()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.spent = {name: spent - self._cpu[name] for name, spent in self.cpu().items()}
        if self._database is not None:
            self.spent["postgres"] = self.services.database_cpu() - self._database

    def summary(self) -> str:
        cpu = "  ".join(f"{name} {spent:.2f}" for name, spent in self.spent.items())
        peak = "  ".join(f"{name} {rss / 2**20:.0f}" for name, rss in self.peak.items())
        return f"CPU s: {cpu}; peak RSS MiB: {peak}"


def _dsn(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Postgres:
    """Fresh databases on the PostgreSQL server of an admin URL (`postgresql+asyncpg://…/postgres`),
    and that server's CPU: its postmaster's own and its children's, the exited ones included."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self.postmaster: psutil.Process | None = None

    async def _execute(self, sql: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(_dsn(self.admin_url))
        try:
            if self.postmaster is None:
                # A backend's parent is the postmaster of the server behind this URL (on this machine).
                backend = psutil.Process(await connection.fetchval("SELECT pg_backend_pid()"))
                self.postmaster = backend.parent()
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create(self, service: str) -> str:
        """A new empty database for `service`; its URL."""
        name = f"herald_bench_{service}_{uuid.uuid4().hex[:10]}"
        await self._execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    async def drop_all(self) -> None:
        while self.created:
            await self._execute(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')

    def cpu(self) -> float:
        """CPU-seconds (user + system) the server has spent so far: the postmaster's, its reaped
        children's (backends that came and went) and its live children's."""
        if self.postmaster is None:
            return 0.0
        live = 0.0
        for child in self.postmaster.children(recursive=True):
            try:
                live += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        times = self.postmaster.cpu_times()
        return live + times.user + times.system + times.children_user + times.children_system


class Services:
    """segment_svc, delivery_svc and campaign_svc as subprocesses on fresh databases: SQLite in a
    temp data dir, or, given `postgres` (an admin URL), one new database each on that server
    (HERALD_<SERVICE>_DB_URL), dropped on exit. `channels` carry a bench token. The data dir (the
    services' logs, SQLite files) is removed on exit unless `keep` (a profile written there).
    Metrics are on, as by default, each service's on a free port (`metrics_url`), unless
    `metrics` is False. `delivery_replicas` > 1 (PostgreSQL) adds delivery_svc processes named
    "delivery-2", … on the same database; campaign_svc dials them all (`ipv4:` target)."""

    def __init__(self, *, postgres: str = "", env: dict[str, str] | None = None, prefix: str = "herald-bench-",
                 keep: bool = False, metrics: bool = True, delivery_replicas: int = 1) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.names = [*SERVICES, *(f"delivery-{i}" for i in range(2, delivery_replicas + 1))]
        self.ports = {name: free_port() for name in self.names}
        self.metrics_ports = {name: free_port() for name in self.names} if metrics else {}
        self.postgres = Postgres(postgres) if postgres else None
        self.extra_env = env or {}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.channels: dict = {}

    async def __aenter__(self) -> Services:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        env = dict(os.environ, HERALD_DATA_DIR=str(self.data_dir), HERALD_API_SECRET=SECRET,
                   HERALD_WEBHOOK_SECRET=WEBHOOK_SECRET,
                   HERALD_LOG_LEVEL="WARNING", **self.extra_env,
                   **{f"HERALD_{name.upper()}_ADDR": f"127.0.0.1:{self.ports[name]}" for name in SERVICES})
        if self.postgres is not None:
            for name in SERVICES:
                env[f"HERALD_{name.upper()}_DB_URL"] = await self.postgres.create(name)
        deliveries = [self.addr(name) for name in self.names if name.startswith("delivery")]
        if len(deliveries) > 1:
            env["HERALD_DELIVERY_TARGET"] = "ipv4:" + ",".join(deliveries)
        for name in self.names:
            service = name.split("-")[0]
            own = {f"HERALD_{service.upper()}_ADDR": self.addr(name),
                   f"HERALD_{service.upper()}_METRICS_ADDR": f"127.0.0.1:{self.metrics_ports[name]}"
                   if name in self.metrics_ports else "off"}
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{service}_svc", env=dict(env, **own),
                stderr=open(self.data_dir / f"{name}.log", "wb"))
        for name in self.names:
            process = self.processes[name]
            await wait_serving(self.ports[name], alive=lambda: process.returncode is None)
        self.token = make_token(SECRET, "bench")
        self.channels = {name: open_channel(self.addr(name), token=self.token) for name in SERVICES}

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def watched(self) -> dict[str, psutil.Process]:
        return {name: psutil.Process(p.pid) for name, p in self.processes.items()}

    def database_cpu(self) -> float | None:
        """The PostgreSQL server's CPU-seconds so far; None on SQLite (the services' own CPU)."""
        return self.postgres.cpu() if self.postgres is not None else None

    async def __aexit__(self, *exc) -> None:
        for channel in self.channels.values():
            await channel.close()
        try:
            await stop_all(self.processes.values())
            if self.postgres is not None:
                await self.postgres.drop_all()
        finally:
            if not self.keep:
                shutil.rmtree(self.data_dir, ignore_errors=True)


async def upsert_users(directory, users: Iterable) -> int:
    """Upserts `users` (directory_pb2.User) through a DirectoryService stub, MAX_USERS_PER_CALL a
    call, each call's users built as it goes: a million users never sit in memory at once."""
    count = 0
    chunk: list = []
    for user in users:
        chunk.append(user)
        if len(chunk) == MAX_USERS_PER_CALL:
            await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=chunk))
            count, chunk = count + len(chunk), []
    if chunk:
        await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=chunk))
    return count + len(chunk)
