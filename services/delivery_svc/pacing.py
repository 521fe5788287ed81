"""A delivery's pace: at most its maximum rate of recipients a second — the lower of the
campaign's `max_send_rate` and HERALD_MAX_SEND_RATE, 0 = none — counted across every replica
sending it, and the rate a run actually sends at (send_rate: recipients a second over the last
RATE_WINDOW_S).

The pace is kept in the delivery's row (`deliveries.paced_until`, store.take_pace): each batch,
in its own transaction, pushes the time the delivery may send again by its recipients ÷ the
rate (from then, or from one batch's worth before now if that is later: a token bucket one
batch deep). The run then waits until that time before its next batch. Replicas sharing a
delivery push the same time, so together they send at the rate; a run resumed after a pause, a
restart or a crash bursts one batch at most, and the times are the clock's (the wall clock;
injectable in tests), so replicas on different hosts agree.
"""

from __future__ import annotations

import asyncio
import collections

from services.kit.clock import Clock

RATE_WINDOW_S = 5.0


def max_rate_of(campaign_rate: float, configured: float) -> float:
    """The rate a delivery keeps to: the lower of the campaign's own and the configured one,
    each 0 for none."""
    rates = [rate for rate in (campaign_rate, configured) if rate > 0]
    return min(rates) if rates else 0.0


def batch_size(configured: int, max_rate: float) -> int:
    """The configured batch size, held to a second's worth at the maximum rate (so that pacing
    spreads batches instead of bursting them)."""
    if max_rate > 0:
        return min(configured, max(1, int(max_rate)))
    return configured


class Pacer:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.handled = 0  # recipients written by the run, over all its passes
        self._next_at = 0.0  # the clock's time (s) the delivery may send again (the row's paced_until)
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def count(self, handled: int, paced_until: float | None = None) -> None:
        """Counts a written batch's recipients, and the delivery's pace its transaction took."""
        self.handled += handled
        if paced_until is not None:
            self._next_at = paced_until
        now = self.clock.now().timestamp()
        self._samples.append((now, self.handled))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()

    def rate(self) -> float:
        """Recipients handled per second over the last few seconds."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def wait(self, stop_requested: asyncio.Event) -> None:
        """Waits until the delivery is back at its pace (or a stop is asked for)."""
        ahead = self._next_at - self.clock.now().timestamp()
        if ahead <= 0 or stop_requested.is_set():
            return
        waits = [asyncio.ensure_future(self.clock.sleep(ahead)), asyncio.ensure_future(stop_requested.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
