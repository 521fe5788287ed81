"""Per-caller call rate: a token bucket per token `sub`, so one noisy client cannot starve the
others. Services calling each other (`service:<name>`) are not limited."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.kit import reasons
from services.kit.errors import ResourceExhausted


@dataclass
class _Bucket:
    tokens: float
    updated: float


class CallerLimiter:
    """Allows `rate` calls a second per caller, with bursts of up to one second's worth."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, caller: str) -> None:
        """Counts one call of `caller`; RESOURCE_EXHAUSTED with a RetryInfo when over the rate."""
        if self.rate <= 0 or caller.startswith("service:"):
            return
        now = self._clock()
        bucket = self._buckets.setdefault(caller, _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise ResourceExhausted(f"caller {caller!r} is over its limit of {self.rate:g} calls per second",
                                    reason=reasons.RATE_LIMITED, retry_after_s=(1 - bucket.tokens) / self.rate)
        bucket.tokens -= 1
