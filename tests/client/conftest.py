"""Fixtures of the client tests: the three real services in-process, and `HeraldClient`s dialling
them the way users build theirs (from settings: each service's address and the API secret)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from harness import DEADLINE_S, TEST_SECRET, System, serve_system
from herald.campaign.v1 import campaign_pb2
from services.client import HeraldClient


def client_of(system: System, **options) -> HeraldClient:
    """A client of the running system; `options` go to the constructor (timeout, max_retry_wait_s…)."""
    return HeraldClient.from_settings(replace(system.settings, api_secret=TEST_SECRET), **options)


@pytest.fixture
async def make_system(new_db_url, tmp_path) -> AsyncIterator[Callable]:
    """`system, herald = await make_system(**settings_overrides)`: all three services and a client."""
    async with AsyncExitStack() as stack:
        async def make(names=("segment", "delivery", "campaign"), **overrides):
            system = await stack.enter_async_context(serve_system(new_db_url, tmp_path, names=names, **overrides))
            herald = client_of(system)
            stack.push_async_callback(herald.close)
            return system, herald
        yield make


@pytest.fixture
async def system_and_client(make_system) -> tuple[System, HeraldClient]:
    return await make_system()


@pytest.fixture
def herald(system_and_client) -> HeraldClient:
    return system_and_client[1]


async def users(herald: HeraldClient, *ids: str) -> None:
    """Upserts users named after their ids (`ann` → `Ann`)."""
    await herald.upsert_users([{"id": i, "name": i.capitalize()} for i in ids])


def campaign_fields(**fields) -> dict:
    """A campaign to `user_ids` from `boss` with a templated message and one-to-one channels."""
    return {"sender_id": "boss", "message_template": {"text": "Hi {{ receiver.name }} from {{ sender.name }}"},
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}"},
            "create_channels": True, **fields}


async def run_campaign(herald: HeraldClient, campaign_id: str, user_ids: list[str]) -> campaign_pb2.Campaign:
    """Creates, starts and follows a campaign to its end; its last state."""
    await herald.create_campaign(campaign_fields(id=campaign_id, user_ids=user_ids))
    await herald.start_campaign(campaign_id)

    async def last() -> campaign_pb2.Campaign:
        return [c async for c in herald.watch_campaign(campaign_id)][-1]

    return await asyncio.wait_for(last(), DEADLINE_S)
