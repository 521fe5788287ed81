"""What an HTTP receiver answered, as webhooks and push read it: when it asks to be tried again
(Retry-After), and the start of a failed answer's body for the dead letter."""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx


async def first_bytes(response: httpx.Response, limit: int) -> str:
    """The start of an answer's body as text; the rest is never read (it may be endless)."""
    head = b""
    async for chunk in response.aiter_raw():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit].decode("utf-8", "replace").strip()


def retry_after_s(value: str | None, now: float) -> float | None:
    """A Retry-After header in seconds from `now`: delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)
