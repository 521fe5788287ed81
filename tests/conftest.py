"""Shared fixtures: a fresh database per test (SQLite file, or a new PostgreSQL database when
HERALD_TEST_DATABASE_URL is set), and helpers to run services on port 0 over real channels."""

from __future__ import annotations

import os
import uuid

import pytest

# grpcio ≥ 1.81 runs its fork handlers when a process with live channels or servers starts a
# subprocess, and the forked child can abort on its closed epoll fd before it execs
# (grpc/grpc#43055). Herald's children always exec, so they need none: off, before grpc loads.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

PG_ADMIN_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "")

# The services tests start as processes (`herald serve`, `python -m services.<name>_svc`) inherit
# this: their metrics would take the default loopback ports, which another run of the suite or a
# `make run` may hold. Tests that look at metrics give ports of their own.
for _service in ("SEGMENT", "CAMPAIGN", "DELIVERY"):
    os.environ.setdefault(f"HERALD_{_service}_METRICS_ADDR", "off")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def new_db_url(tmp_path):
    """Factory of fresh, empty database URLs: `url = await new_db_url("segment")`."""
    created: list[str] = []

    async def make(name: str = "db") -> str:
        if not PG_ADMIN_URL:
            return f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
        db = f"t_{name}_{uuid.uuid4().hex[:12]}"
        await _pg_admin(f'CREATE DATABASE "{db}"')
        created.append(db)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + db

    yield make
    for db in created:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture
async def db_url(new_db_url):
    return await new_db_url("db")
