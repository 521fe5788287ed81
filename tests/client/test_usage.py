"""`get_usage` through `HeraldClient` and `HeraldSyncClient`: a month's messages against the
monthly capacity, `remaining` unset when unlimited, and a malformed month refused naming `month`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from harness import DEADLINE_S, TEST_SECRET
from services.client import HeraldSyncClient
from services.client.errors import InvalidArgument
from services.kit.months import month_of

from client.conftest import run_campaign, users


async def _month_written(herald) -> str:
    """The month (UTC) the system's one message was written in."""
    [message] = (await herald.query_messages()).messages
    return month_of(message.created_at.ToDatetime(timezone.utc))


async def test_usage_of_the_current_month_and_of_a_named_one(herald):
    asked_in = month_of(datetime.now(timezone.utc))
    fresh = await herald.get_usage()
    assert fresh.month in (asked_in, month_of(datetime.now(timezone.utc)))
    assert (fresh.messages_sent, fresh.capacity, fresh.HasField("remaining")) == (0, 0, False)

    await users(herald, "boss", "ann")
    await run_campaign(herald, "hello", ["ann", "ghost"])
    month = await _month_written(herald)
    written = await herald.get_usage(month)
    assert (written.month, written.messages_sent, written.capacity, written.HasField("remaining")) == (
        month, 1, 0, False)
    assert (await herald.get_usage("1999-12")).messages_sent == 0

    with pytest.raises(InvalidArgument) as caught:
        await herald.get_usage("2026-13")
    assert [v.field for v in caught.value.field_violations] == ["month"]
    assert (caught.value.reason, caught.value.domain) == ("INVALID_ARGUMENT", "campaign.herald")


async def test_remaining_with_a_capacity_and_from_the_sync_client(make_system):
    system, herald = await make_system(monthly_message_capacity=5)
    await users(herald, "boss", "ann")
    await run_campaign(herald, "hello", ["ann"])
    month = await _month_written(herald)
    usage = await herald.get_usage(month)
    assert (usage.messages_sent, usage.capacity, usage.remaining) == (1, 5, 4)

    def from_sync() -> tuple[int, int, int]:
        with HeraldSyncClient.from_settings(replace(system.settings, api_secret=TEST_SECRET)) as sync:
            answer = sync.get_usage(month=month)
            return answer.messages_sent, answer.capacity, answer.remaining

    assert await asyncio.wait_for(asyncio.to_thread(from_sync), DEADLINE_S) == (1, 5, 4)
