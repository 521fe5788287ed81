"""A run's pace: at most `max_send_rate` recipients a second (0 = no limit of its own), and the
rate it actually sends at (send_rate: recipients a second over the last RATE_WINDOW_S)."""

from __future__ import annotations

import asyncio
import collections
import time

RATE_WINDOW_S = 5.0


def batch_size(configured: int, max_rate: float) -> int:
    """The configured batch size, held to a second's worth at the maximum rate (so that pacing
    spreads batches instead of bursting them)."""
    if max_rate > 0:
        return min(configured, max(1, int(max_rate)))
    return configured


class Pacer:
    def __init__(self, max_rate: float) -> None:
        self.max_rate = max_rate
        self.handled = 0  # recipients written by the run, over all its passes
        self._pass_started = time.monotonic()
        self._handled_before_pass = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def begin_pass(self) -> None:
        """A pass from the checkpoint begins: the pace counts from here."""
        self._pass_started = time.monotonic()
        self._handled_before_pass = self.handled

    def count(self, handled: int) -> None:
        """Counts a written batch's recipients."""
        self.handled += handled
        now = time.monotonic()
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
        """Waits until the pass is back at its pace (or a stop is asked for)."""
        if self.max_rate <= 0:
            return
        ahead = (self.handled - self._handled_before_pass) / self.max_rate - (time.monotonic() - self._pass_started)
        if ahead > 0:
            try:
                await asyncio.wait_for(stop_requested.wait(), ahead)
            except TimeoutError:
                pass
