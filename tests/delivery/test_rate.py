"""A campaign's own max_send_rate (DESIGN §10.2), paced on an injectable clock: the delivery
sends between 0.9 × and 1.0 × rate × elapsed + one batch, whatever the machine's speed (the test
moves the clock only while the run waits for its pace); the lower of the campaign's rate and
HERALD_MAX_SEND_RATE applies; while sending, stats carry send_rate and eta."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from harness import eventually
from herald.campaign.v1 import campaign_pb2

from delivery.helpers import campaign, get, start, upsert_users, wait_done
from services.delivery_svc.store import RATE_WINDOW_S

RATE, BATCH = 500, 50
USERS = [f"u{i:04d}" for i in range(2000)]


class SteppedClock:
    """Time that moves when the test says; sleepers wake once it has moved past their end."""

    def __init__(self) -> None:
        self._now = time.time()
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now, dt.timezone.utc)

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        entry = (self._now + seconds, woken)
        self._sleepers.append(entry)
        try:
            await woken
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        # The service reads the time as a datetime (microseconds): a sleep's end may be off by one.
        for entry in [e for e in self._sleepers if e[0] <= self._now + 1e-6]:
            self._sleepers.remove(entry)
            entry[1].set_result(None)


async def test_a_campaign_keeps_to_its_max_send_rate(make_system):
    clock = SteppedClock()
    # HERALD_MAX_SEND_RATE above the campaign's: the campaign's, the lower, applies.
    _, stubs = await make_system(delivery_batch_size=BATCH, max_send_rate=5 * RATE,
                                 build_kwargs={"delivery": {"clock": clock}})
    await upsert_users(stubs.directory, ["sender", *USERS])
    started = clock.now()
    await start(stubs, campaign("paced", user_ids=USERS, max_send_rate=RATE))
    for step in range(40):
        await eventually(lambda: clock.sleeping, lambda n: n > 0, what=f"the run waiting for its pace (step {step})")
        delivery = await get(stubs, "paced")
        handled = delivery.stats.stats_messages_sent
        elapsed = (clock.now() - started).total_seconds() + 1e-3  # datetimes keep microseconds only
        assert 0.9 * RATE * elapsed <= handled <= RATE * elapsed + BATCH, (step, handled, elapsed)
        assert delivery.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
        if RATE_WINDOW_S + 0.2 < elapsed and handled < len(USERS):  # measured over a window of the pace's clock
            assert 0.9 * RATE <= delivery.stats.send_rate <= 1.1 * RATE, delivery.stats
            # When the rest would be sent at that rate (from the wall clock's now, as clients see it).
            left = (delivery.stats.eta.ToDatetime(dt.timezone.utc) - dt.datetime.now(dt.timezone.utc)).total_seconds()
            expected = (len(USERS) - handled) / delivery.stats.send_rate
            assert delivery.stats.HasField("eta") and abs(left - expected) < 5, (left, expected, delivery.stats)
        clock.advance(BATCH / RATE)
    while (await get(stubs, "paced")).status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
        clock.advance(1.0)
        await asyncio.sleep(0.01)
    done = await wait_done(stubs, "paced")
    assert done.stats.stats_messages_sent == len(USERS)
    assert done.stats.send_rate == 0 and not done.stats.HasField("eta")  # not sending any more
