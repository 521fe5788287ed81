"""The server interceptor every Herald service runs: authentication, error mapping, and
ending open streams with UNAVAILABLE on shutdown.

- Every RPC needs `authorization: Bearer <JWT>`; health checks and reflection stay open.
- Each caller (the token's `sub`) gets `HERALD_CALLER_RATE_LIMIT` calls a second, if set.
- Requests are decoded once the caller is authenticated: bytes that are no request message are
  INVALID_ARGUMENT (grpc would answer UNKNOWN); a decoded one must hold only finite numbers and
  timestamps in range (`services.kit.request_values`).
- Handlers raise `HeraldError`s; they become statuses with `google.rpc` details whose
  `ErrorInfo.domain` names this service. Any other exception is logged and becomes an opaque
  INTERNAL (never UNKNOWN with its text).
- A call made for a campaign (the caller's trace baggage names it) is handled for that campaign:
  its logs and span carry `campaign_id` (services.kit.tracing).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, cast

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.kit import reasons
from services.kit.auth import verify_authorization
from services.kit.errors import HeraldError, Internal, InvalidArgument, Unavailable, Unimplemented
from services.kit.limits import MAX_DRAINED_BYTES
from services.kit.paging import cursor_key, key_for_cursors
from services.kit.ratelimit import CallerLimiter
from services.kit.request_values import check_request
from services.kit.tracing import adopt_campaign

log = logging.getLogger("herald.rpc")

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Claims of the current call's token (its `sub` names the caller).
current_claims: contextvars.ContextVar[dict] = contextvars.ContextVar("current_claims", default={})

if TYPE_CHECKING:  # generic only in the stubs
    # The interceptor wraps every method, whatever its messages: requests and responses stay Any.
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Context = grpc.aio.ServicerContext[Any, Any]
    _Behavior = Callable[..., Any]  # the stubs give behaviors the sync context; aio passes its own

SHUTTING_DOWN = "server is shutting down; reconnect"

# SQLSTATEs of text PostgreSQL cannot store (NUL in text, \u0000 in JSON): a client's mistake,
# mapped here for every string the handlers' own checks (services.kit.fields) do not cover.
UNSTORABLE_TEXT_SQLSTATES = {"22021", "22P05"}


class HeraldServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, secret: str, *, domain: str, caller_rate: float = 0.0) -> None:
        self._secret = secret
        self._cursor_key = key_for_cursors(secret)
        self._domain = domain
        self._limiter = CallerLimiter(caller_rate)
        self.shutdown = asyncio.Event()

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
                                handler_call_details: grpc.HandlerCallDetails) -> _Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        # Only keys ending in -bin carry bytes: `authorization` is text.
        header = cast("str | None", dict(handler_call_details.invocation_metadata or ()).get("authorization"))
        return _wrap(handler, method, lambda: self._admit(header), self.shutdown, self._domain)

    def _admit(self, header: str | None) -> dict:
        """The caller's claims, once its token is valid and it is within its call rate; the
        call's cursors are signed with this deployment's key from here on."""
        claims = verify_authorization(header, self._secret)
        self._limiter.take(str(claims.get("sub") or "anonymous"))
        cursor_key.set(self._cursor_key)
        return claims


def _wrap(handler: _Handler, method: str, authenticate: Callable[[], dict],
          shutdown: asyncio.Event, domain: str) -> _Handler:
    # Requests arrive as bytes and are decoded in `call`, after authentication.
    codec = dict(response_serializer=handler.response_serializer)
    decode = handler.request_deserializer

    def unary(behavior: _Behavior, requests: Callable[[Any], Any],
              client_streaming: bool = False) -> Callable[[Any, _Context], Coroutine[Any, Any, Any]]:
        async def call(raw: Any, context: _Context) -> Any:
            try:
                current_claims.set(authenticate())
                adopt_campaign()
                return await _finish_even_if_cancelled(behavior(requests(raw), context), method)
            except Exception as exc:  # noqa: BLE001 — mapped to a status below
                if client_streaming:
                    await _drain(raw)
                await _abort(context, method, exc, domain)
        return call

    def streaming(behavior: _Behavior,
                  requests: Callable[[Any], Any]) -> Callable[[Any, _Context], AsyncIterator[Any]]:
        async def call(raw: Any, context: _Context) -> AsyncIterator[Any]:
            try:
                current_claims.set(authenticate())
                adopt_campaign()
                async for item in _until_shutdown(behavior(requests(raw), context), shutdown):
                    yield item
            except Exception as exc:  # noqa: BLE001
                await _abort(context, method, exc, domain)
        return call

    def one(raw: bytes) -> object:
        return _decode(decode, raw)

    async def each(raw_requests: AsyncIterator[bytes]) -> AsyncIterator:
        async for raw in raw_requests:
            yield _decode(decode, raw)

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, one), **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary, each, client_streaming=True), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream, one), **codec)
    assert handler.stream_stream is not None  # a method handler has exactly one behavior
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream, each), **codec)


def _decode(decode: Callable[[bytes], object] | None, raw: bytes) -> object:
    if decode is None:
        return raw
    try:
        request = decode(raw)
    except Exception:  # noqa: BLE001 — DecodeError, or whatever a handler's own deserializer raises
        raise InvalidArgument("request", "cannot be decoded as this method's request message",
                              reason=reasons.REQUEST_UNDECODABLE) from None
    if isinstance(request, Message):
        check_request(request, raw)
    return request


async def _drain(raw_requests: AsyncIterator[bytes]) -> None:
    """Reads (and drops) what the client still sends, up to MAX_DRAINED_BYTES, before an error
    answers a client-streaming call. Answered while its writes are in flight, grpc's asyncio
    client fails the pending write and reports INTERNAL "Internal error from Core" instead of
    the status sent (grpc/grpc#36066): the client would not learn which field was bad."""
    budget = MAX_DRAINED_BYTES
    try:
        async for raw in raw_requests:
            budget -= len(raw)
            if budget <= 0:
                return
    except Exception:  # noqa: BLE001 — the stream broke (cancelled, deadline): answer anyway
        return


async def _finish_even_if_cancelled(work: Awaitable[Any], method: str) -> Any:
    """Runs a unary handler to its end even when its call is cancelled (deadline, disconnect):
    cut mid-write, asyncpg leaves a half-sent executemany open, holding its locks."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda done: _log_orphan(done, method))
        raise


def _log_orphan(task: asyncio.Future[Any], method: str) -> None:
    if task.cancelled() or task.exception() is None or isinstance(task.exception(), HeraldError):
        return
    log.error("handler of a cancelled call failed", extra={"method": method}, exc_info=task.exception())


class _ShutdownError(Exception):
    pass


async def _until_shutdown(items: AsyncIterator[Any], shutdown: asyncio.Event) -> AsyncIterator[Any]:
    """Relays a response stream until the server starts shutting down."""
    iterator = items.__aiter__()
    stop = asyncio.ensure_future(shutdown.wait())
    step: asyncio.Future | None = None
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
        if step is not None and not step.done():
            # Cancelled while the handler waits for its next item: end that wait first, since
            # closing a generator that is still running raises RuntimeError.
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _abort(context: _Context, method: str, exc: Exception, domain: str) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    error = _client_error(method, exc)
    status = rpc_status.to_status(error.to_status(domain))
    # abort, not abort_with_status (which is the same): a tracing interceptor outside sees abort.
    await context.abort(status.code, status.details, status.trailing_metadata)


def _client_error(method: str, exc: Exception) -> HeraldError:
    """What the client is told of `exc`; an unexpected one is logged and told as INTERNAL."""
    if isinstance(exc, HeraldError):
        return exc
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT_SQLSTATES:
        return InvalidArgument("request", "strings must not contain NUL (U+0000) characters")
    if isinstance(exc, _ShutdownError):
        return Unavailable(SHUTTING_DOWN, reason=reasons.SERVER_SHUTTING_DOWN)
    if isinstance(exc, NotImplementedError):
        return Unimplemented(f"{method} is not implemented yet", reason=reasons.METHOD_NOT_IMPLEMENTED)
    if isinstance(exc, PoolTimeout):  # every pooled connection stayed taken: a load peak, not a bug
        log.warning("database busy", extra={"method": method})
        return Unavailable("the database is busy; retry", reason=reasons.DATABASE_BUSY)
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("dependency unavailable", extra={"method": method, "upstream": str(exc.code())})
        return Unavailable("a dependency is unavailable; retry", reason=reasons.DEPENDENCY_UNAVAILABLE)
    log.exception("unhandled error", extra={"method": method}, exc_info=exc)
    return Internal("internal error", reason=reasons.INTERNAL)
