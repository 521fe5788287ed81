"""RPC metrics, server side and client side, named as the grpc-ecosystem's go-grpc-prometheus
names them, so that its dashboards and alerts work unchanged:

    grpc_server_started_total{grpc_type, grpc_service, grpc_method}
    grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
    grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}   (histogram)
    grpc_client_started_total, grpc_client_handled_total, grpc_client_handling_seconds (the same,
    for the calls a service makes to the others)

`grpc_type` is unary, client_stream, server_stream or bidi_stream; `grpc_code` the status code's
name (OK, NOT_FOUND, …). A stream's handling time is the whole stream's. Labels are bound once per
method, not per call: a call costs two clock reads, one counter increment and one observation.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc.aio import ClientCallDetails, StreamStreamCall, StreamUnaryCall, UnaryStreamCall, UnaryUnaryCall
from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:  # generic only in the stubs
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Context = grpc.aio.ServicerContext[Any, Any]
    _Behavior = Callable[..., Any]
    _CounterChild = Counter
    _HistogramChild = Histogram

LABELS = ("grpc_type", "grpc_service", "grpc_method")

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNKNOWN = grpc.StatusCode.UNKNOWN


def rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


class MethodMetrics:
    """One method's children of the side's metrics, bound once."""

    __slots__ = ("started", "handling", "_handled", "_family", "_labels")

    def __init__(self, metrics: RpcMetrics, labels: tuple[str, str, str]) -> None:
        self.started = metrics.started.labels(*labels)
        self.handling = metrics.handling.labels(*labels)
        self._family = metrics.handled
        self._labels = labels
        self._handled: dict[grpc.StatusCode, _CounterChild] = {}

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._family.labels(*self._labels, code.name)
        child.inc()
        self.handling.observe(seconds)


class RpcMetrics:
    """The RPC metrics of one side ("server" or "client") in a service's registry."""

    def __init__(self, registry: CollectorRegistry, side: str) -> None:
        what = "RPCs started on the server" if side == "server" else "RPCs started by this service"
        self.started = Counter(f"grpc_{side}_started_total", what, LABELS, registry=registry)
        self.handled = Counter(f"grpc_{side}_handled_total", f"RPCs completed on the {side} side, by status code",
                               (*LABELS, "grpc_code"), registry=registry)
        self.handling = Histogram(f"grpc_{side}_handling_seconds",
                                  f"Time from an RPC's start to its end on the {side} side (a stream: all of it)",
                                  LABELS, registry=registry)
        self._methods: dict[str | bytes, MethodMetrics] = {}

    def method(self, full_method: str | bytes, kind: str) -> MethodMetrics:
        """The children of `/package.Service/Method` (bytes on some grpc client paths, grpc#31092)."""
        found = self._methods.get(full_method)
        if found is None:
            name = full_method.decode() if isinstance(full_method, bytes) else full_method
            service, _, method = name.lstrip("/").rpartition("/")
            found = self._methods[full_method] = MethodMetrics(self, (kind, service, method))
        return found


# --- server side ------------------------------------------------------------------------------


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call the server handles (health checks and reflection too)."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
                                handler_call_details: grpc.HandlerCallDetails) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED itself
            return None
        method = self._metrics.method(handler_call_details.method,
                                      rpc_type(handler.request_streaming, handler.response_streaming))
        codec = dict(request_deserializer=handler.request_deserializer,
                     response_serializer=handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_measured(handler.unary_unary, method), **codec)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_measured(handler.stream_unary, method), **codec)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_measured_responses(handler.unary_stream, method), **codec)
        assert handler.stream_stream is not None  # a method handler has exactly one behavior
        return grpc.stream_stream_rpc_method_handler(_measured_responses(handler.stream_stream, method), **codec)


def _measured_responses(behavior: _Behavior, method: MethodMetrics) -> _Behavior:
    """A response-streaming behavior is an async generator, or (the reader/writer API, e.g. the
    health service's Watch) a coroutine function that writes with context.write: grpc tells them
    apart by the function, so the wrapper must be of the same kind."""
    return _measured(behavior, method) if inspect.iscoroutinefunction(behavior) else _measured_stream(behavior, method)


def _measured(behavior: _Behavior, method: MethodMetrics) -> _Behavior:
    async def call(request: Any, context: _Context) -> Any:
        method.started.inc()
        started = time.perf_counter()
        code = _OK
        try:
            result = behavior(request, context)
            if inspect.isawaitable(result):  # an aio handler (a sync one returns its response)
                result = await result
            code = _code(context, _OK)
            return result
        except asyncio.CancelledError:
            code = _CANCELLED
            raise
        except BaseException:
            code = _code(context, _UNKNOWN)
            raise
        finally:
            method.handled(code, time.perf_counter() - started)
    return call


def _measured_stream(behavior: _Behavior, method: MethodMetrics) -> Callable[[Any, _Context], AsyncIterator[Any]]:
    async def call(request: Any, context: _Context) -> AsyncIterator[Any]:
        method.started.inc()
        started = time.perf_counter()
        code = _OK
        try:
            async for item in behavior(request, context):
                yield item
            code = _code(context, _OK)
        except (asyncio.CancelledError, GeneratorExit):
            code = _CANCELLED
            raise
        except BaseException:
            code = _code(context, _UNKNOWN)
            raise
        finally:
            method.handled(code, time.perf_counter() - started)
    return call


def _code(context: _Context, default: grpc.StatusCode) -> grpc.StatusCode:
    """The status the handler (or the interceptor within) set: an abort sets it before raising."""
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


# --- client side ------------------------------------------------------------------------------

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Requests = AsyncIterable[_Request] | Iterable[_Request]


class _ClientMetrics:
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def _unary_response(self, method: MethodMetrics, call: Awaitable[Any]) -> Any:
        """Waits for a unary call's end (its caller waits for it anyway) and counts its status."""
        method.started.inc()
        started = time.perf_counter()
        try:
            done = await call
            code = await done.code()
        except asyncio.CancelledError:
            method.handled(_CANCELLED, time.perf_counter() - started)
            raise
        method.handled(code, time.perf_counter() - started)
        return done

    async def _when_done(self, method: MethodMetrics, call: Awaitable[Any]) -> Any:
        """Counts a streaming call's status when it ends, leaving the call as it is (the caller
        reads it, writes to it, cancels it…); its status is read in a task, as aio's `code()` is
        a coroutine and a done callback is not."""
        method.started.inc()
        started = time.perf_counter()
        stream = await call

        def finished(done: Any) -> None:
            seconds = time.perf_counter() - started
            status = asyncio.ensure_future(done.code())
            status.add_done_callback(
                lambda task: method.handled(_UNKNOWN if task.cancelled() or task.exception() else task.result(),
                                            seconds))

        stream.add_done_callback(finished)
        return stream


# grpc.aio files each interceptor under its first matching kind only: one class per kind.
class _UnaryUnary(_ClientMetrics, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
            self, continuation: Callable[[ClientCallDetails, _Request], Awaitable[UnaryUnaryCall[_Request, _Response]]],
            details: ClientCallDetails, request: _Request) -> UnaryUnaryCall[_Request, _Response]:
        call = continuation(details, request)
        return await self._unary_response(self._metrics.method(details.method, "unary"), call)


class _UnaryStream(_ClientMetrics, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
            self, continuation: Callable[[ClientCallDetails, _Request],
                                         Awaitable[UnaryStreamCall[_Request, _Response]]],
            details: ClientCallDetails, request: _Request) -> UnaryStreamCall[_Request, _Response]:
        call = continuation(details, request)
        return await self._when_done(self._metrics.method(details.method, "server_stream"), call)


class _StreamUnary(_ClientMetrics, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
            self, continuation: Callable[[ClientCallDetails, _Requests[_Request]],
                                         Awaitable[StreamUnaryCall[_Request, _Response]]],
            details: ClientCallDetails, request_iterator: _Requests[_Request]) -> StreamUnaryCall[_Request, _Response]:
        call = continuation(details, request_iterator)
        return await self._when_done(self._metrics.method(details.method, "client_stream"), call)


class _StreamStream(_ClientMetrics, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
            self, continuation: Callable[[ClientCallDetails, _Requests[_Request]],
                                         Awaitable[StreamStreamCall[_Request, _Response]]],
            details: ClientCallDetails, request_iterator: _Requests[_Request]) -> StreamStreamCall[_Request, _Response]:
        call = continuation(details, request_iterator)
        return await self._when_done(self._metrics.method(details.method, "bidi_stream"), call)


def client_metrics_interceptors(metrics: RpcMetrics) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors that count a channel's calls into `metrics` (a "client" side)."""
    return [kind(metrics) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
