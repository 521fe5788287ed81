"""A call cancelled by its client (deadline, disconnect) does not cut its handler mid-write:
the handler runs to its end, so its write lands whole or, when the call was cut before its
handler began, not at all; and nothing is left holding locks (on PostgreSQL, a half-sent bulk
insert would otherwise wedge its connection)."""

from __future__ import annotations

import time

import grpc

from campaign.conftest import request

USER_IDS = [f"{i:0200d}" for i in range(10_000)]  # a 2 MB bulk insert into campaign_users
ATTEMPTS = 24


async def test_a_deadline_mid_write_leaves_nothing_stuck(env):
    started = time.monotonic()
    await env.client.CreateCampaign(request(id="warm", user_ids=USER_IDS))
    full = time.monotonic() - started
    cut = finished_anyway = 0
    for k in range(ATTEMPTS):
        if cut >= 3 and finished_anyway >= 1:
            break
        campaign_id = f"cut{k}"
        try:  # deadlines from a twentieth of a whole call to most of one
            await env.client.CreateCampaign(request(id=campaign_id, user_ids=USER_IDS),
                                            timeout=full * (0.05 + 0.9 * (k % 8) / 8))
            continue  # finished within its deadline
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
        cut += 1
        # The same request again: the database answers at once (a wedged connection would hold
        # its locks and stall it), and either the cut call's handler wrote the campaign (it ran
        # to its end) or nothing of it is there and this one writes it.
        try:
            await env.client.CreateCampaign(request(id=campaign_id, user_ids=USER_IDS), timeout=30)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ALREADY_EXISTS, exc
            finished_anyway += 1
        assert len((await env.get(campaign_id)).user_ids) == len(USER_IDS)  # whole, never half
    assert cut >= 3, f"only {cut} of {ATTEMPTS} calls were cut: the test checked too little"
    assert finished_anyway >= 1, "no cut call's handler was seen finishing its write"

