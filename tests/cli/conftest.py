"""The CLI tests run `herald` (`python -m services.cli`) as a subprocess against the three
services started in the test's process (tests/harness.py: serve_system, run_herald)."""

from __future__ import annotations

import pytest

from harness import TEST_SECRET, serve_system
from services.client import HeraldClient
from services.kit.auth import make_token


@pytest.fixture
async def system(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as running:
        yield running


@pytest.fixture
async def herald(system):
    """A client of the same services, for what a test sets up or checks behind the CLI's back."""
    settings = system.settings
    async with HeraldClient(segment_addr=settings.segment_addr, campaign_addr=settings.campaign_addr,
                            delivery_addr=settings.delivery_addr, token=make_token(TEST_SECRET, "test")) as client:
        yield client
