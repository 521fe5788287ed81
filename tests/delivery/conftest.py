"""Fixtures of the delivery tests: the real segment and delivery services on port 0."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from delivery.helpers import Stubs
from harness import serve_system


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
