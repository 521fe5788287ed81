"""`herald usage [--month YYYY-MM]`: a month's messages against the monthly capacity as a table
and as JSON, unlimited and with a capacity, and a malformed month as one line with exit 1."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from harness import DEADLINE_S, run_herald, serve_system
from services.kit.months import month_of


async def _one_message_sent(herald) -> str:
    """Sends one message (a campaign from boss to ann); the month (UTC) it was written in."""
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
    await herald.create_campaign(id="hello", sender_id="boss", user_ids=["ann"], message_template={"text": "Hi"},
                                 channel_template={"type": "messaging"}, create_channels=True)
    await herald.start_campaign("hello")
    await asyncio.wait_for(_watched(herald, "hello"), DEADLINE_S)
    [message] = (await herald.query_messages()).messages
    return month_of(message.created_at.ToDatetime(timezone.utc))


async def _watched(herald, campaign_id: str) -> None:
    async for _ in herald.watch_campaign(campaign_id):
        pass


async def test_usage_as_a_table_and_as_json(system, herald):
    asked_in = month_of(datetime.now(timezone.utc))
    table = await run_herald(system, "usage")
    assert table.code == 0, table.err
    header, row = table.out.splitlines()
    assert header.split() == ["MONTH", "SENT", "CAPACITY", "REMAINING"]
    assert row.split()[0] in (asked_in, month_of(datetime.now(timezone.utc)))
    assert row.split()[1:] == ["0", "unlimited", "unlimited"]

    month = await _one_message_sent(herald)
    as_json = await run_herald(system, "usage", "--month", month, "--json")
    assert as_json.code == 0, as_json.err
    # proto3 JSON: int64 numbers as strings; `remaining` left out when unlimited.
    assert as_json.json() == [{"month": month, "messages_sent": "1", "capacity": "0"}]
    empty = await run_herald(system, "usage", "--month", "1999-12")
    assert empty.out.splitlines()[1].split() == ["1999-12", "0", "unlimited", "unlimited"]


async def test_usage_with_a_capacity(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, monthly_message_capacity=12_000) as system:
        table = await run_herald(system, "usage", "--month", "2026-01")
        assert table.code == 0, table.err
        assert table.out.splitlines()[1].split() == ["2026-01", "0", "12,000", "12,000"]
        as_json = await run_herald(system, "usage", "--month", "2026-01", "--json")
        assert as_json.json() == [{"month": "2026-01", "messages_sent": "0", "capacity": "12000", "remaining": "12000"}]


async def test_a_malformed_month_is_one_line_naming_month(system):
    bad = await run_herald(system, "usage", "--month", "2026-13")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err == "herald: INVALID_ARGUMENT: month: must be a month from 01 to 12 (INVALID_ARGUMENT)\n"
