"""A call cancelled by its client (deadline, disconnect) does not cut its handler mid-write:
the handler finishes or rolls back, and nothing is left holding locks (on PostgreSQL, a
half-sent bulk insert would otherwise wedge its connection)."""

from __future__ import annotations

import time

import grpc
import pytest

from campaign.conftest import request

USER_IDS = [f"{i:0200d}" for i in range(10_000)]  # a 2 MB bulk insert into campaign_users


async def test_a_deadline_mid_write_leaves_nothing_stuck(env):
    started = time.monotonic()
    await env.client.CreateCampaign(request(id="warm", user_ids=USER_IDS))
    full = time.monotonic() - started
    for k in range(12):
        campaign_id = f"cut{k}"
        try:
            await env.client.CreateCampaign(request(id=campaign_id, user_ids=USER_IDS),
                                            timeout=full * (0.2 + 0.07 * k))
            continue  # finished within its deadline
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The cut call's handler ran to its end: its campaign exists whole, and the database
        # answers at once (a wedged connection would hold its locks and stall these calls).
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await env.client.CreateCampaign(request(id=campaign_id, user_ids=["u1"]), timeout=10)
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
        created = await env.get(campaign_id)
        assert len(created.user_ids) == len(USER_IDS)
