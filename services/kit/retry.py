"""Retry policy for outbound calls: only UNAVAILABLE, bounded, with jittered backoff."""

from __future__ import annotations

from typing import TypeVar

import grpc
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

DEFAULT_ATTEMPTS = 6
DEFAULT_DEADLINE_S = 30.0

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def retrying(attempts: int = DEFAULT_ATTEMPTS, max_wait_s: float = 2.0) -> AsyncRetrying:
    """Use as `async for attempt in retrying(): with attempt: await stub.Call(...)`."""
    return AsyncRetrying(
        retry=retry_if_exception(is_unavailable),
        wait=wait_random_exponential(multiplier=0.05, max=max_wait_s),
        stop=stop_after_attempt(attempts),
        reraise=True,
    )


async def call_idempotent(  # type: ignore[return]  # the loop returns, or reraises the last error
        rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response], request: _Request, *,
        timeout: float = DEFAULT_DEADLINE_S, attempts: int = DEFAULT_ATTEMPTS) -> _Response:
    """Calls an idempotent unary RPC with a deadline, retrying UNAVAILABLE only."""
    async for attempt in retrying(attempts):
        with attempt:
            return await rpc(request, timeout=timeout)
