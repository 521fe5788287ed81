"""Fixtures of the delivery tests: the real segment and delivery services on port 0."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from delivery.helpers import Stubs
from harness import serve_system
from services.delivery_svc.migrations import SCHEMA
from services.kit.db import make_engine, make_sessionmaker
from services.kit.migrate import migrate


@pytest.fixture
async def make_system(new_db_url, tmp_path):
    """`system, stubs = await make_system(**settings_overrides)`: segment + delivery running."""
    async with AsyncExitStack() as stack:
        async def make(**overrides):
            system = await stack.enter_async_context(
                serve_system(new_db_url, tmp_path, names=("segment", "delivery"), **overrides))
            return system, Stubs(system.channel("segment"), system.channel("delivery"))
        yield make


@pytest.fixture
async def stubs(make_system):
    _, stubs = await make_system()
    return stubs


@pytest.fixture
async def sessions(db_url):
    """Sessions of a migrated delivery database, for the tests below gRPC."""
    engine = make_engine(db_url)
    await migrate(engine, SCHEMA)
    yield make_sessionmaker(engine)
    await engine.dispose()
