"""The server interceptor every Herald service runs: authentication, error mapping, and
ending open streams with UNAVAILABLE on shutdown.

- Every RPC needs `authorization: Bearer <JWT>`; health checks and reflection stay open.
- Each caller (the token's `sub`) gets `HERALD_CALLER_RATE_LIMIT` calls a second, if set.
- Handlers raise `HeraldError`s; they become statuses with `google.rpc` details. Any other
  exception is logged and becomes an opaque INTERNAL (never UNKNOWN with its text).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable

import grpc
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError

from services.kit.auth import verify_authorization
from services.kit.errors import HeraldError, InvalidArgument, internal_status
from services.kit.ratelimit import CallerLimiter

log = logging.getLogger("herald.rpc")

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Claims of the current call's token (its `sub` names the caller).
current_claims: contextvars.ContextVar[dict] = contextvars.ContextVar("current_claims", default={})

SHUTTING_DOWN = "server is shutting down; reconnect"

# SQLSTATEs of text PostgreSQL cannot store (NUL in text, \u0000 in JSON): a client's mistake,
# mapped here for every string the handlers' own checks (services.kit.fields) do not cover.
UNSTORABLE_TEXT_SQLSTATES = {"22021", "22P05"}


class HeraldServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, secret: str, *, caller_rate: float = 0.0) -> None:
        self._secret = secret
        self._limiter = CallerLimiter(caller_rate)
        self.shutdown = asyncio.Event()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        header = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        return _wrap(handler, method, lambda: self._admit(header), self.shutdown)

    def _admit(self, header: str | None) -> dict:
        """The caller's claims, once its token is valid and it is within its call rate."""
        claims = verify_authorization(header, self._secret)
        self._limiter.take(str(claims.get("sub") or "anonymous"))
        return claims


def _wrap(handler: grpc.RpcMethodHandler, method: str, authenticate: Callable[[], dict],
          shutdown: asyncio.Event) -> grpc.RpcMethodHandler:
    codec = dict(request_deserializer=handler.request_deserializer,
                 response_serializer=handler.response_serializer)

    def unary(behavior):
        async def call(request_or_iterator, context):
            try:
                current_claims.set(authenticate())
                return await _finish_even_if_cancelled(behavior(request_or_iterator, context), method)
            except Exception as exc:  # noqa: BLE001 — mapped to a status below
                await _abort(context, method, exc)
        return call

    def streaming(behavior):
        async def call(request_or_iterator, context):
            try:
                current_claims.set(authenticate())
                async for item in _until_shutdown(behavior(request_or_iterator, context), shutdown):
                    yield item
            except Exception as exc:  # noqa: BLE001
                await _abort(context, method, exc)
        return call

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **codec)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **codec)


async def _finish_even_if_cancelled(work, method: str):
    """Runs a unary handler to its end even when its call is cancelled (deadline, disconnect):
    cut mid-write, asyncpg leaves a half-sent executemany open, holding its locks."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda done: _log_orphan(done, method))
        raise


def _log_orphan(task: asyncio.Task, method: str) -> None:
    if task.cancelled() or task.exception() is None or isinstance(task.exception(), HeraldError):
        return
    log.error("handler of a cancelled call failed", extra={"method": method}, exc_info=task.exception())


class _ShutdownError(Exception):
    pass


async def _until_shutdown(items: AsyncIterator, shutdown: asyncio.Event) -> AsyncIterator:
    """Relays a response stream until the server starts shutting down."""
    iterator = items.__aiter__()
    stop = asyncio.ensure_future(shutdown.wait())
    try:
        while True:
            step = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                raise _ShutdownError()
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stop.cancel()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT_SQLSTATES:
        exc = InvalidArgument("request", "strings must not contain NUL (U+0000) characters")
    if isinstance(exc, _ShutdownError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
    if isinstance(exc, HeraldError):
        await context.abort_with_status(rpc_status.to_status(exc.to_status()))
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("dependency unavailable", extra={"method": method, "upstream": str(exc.code())})
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable; retry")
    log.exception("unhandled error", extra={"method": method}, exc_info=exc)
    await context.abort_with_status(rpc_status.to_status(internal_status()))
