"""Channels to other Herald services: bearer token per call, MAX_MESSAGE_BYTES messages, optional TLS."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
from grpc.aio import ClientCallDetails, StreamStreamCall, StreamUnaryCall, UnaryStreamCall, UnaryUnaryCall

from services.kit.auth import service_token
from services.kit.config import Settings
from services.kit.limits import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from services.kit.telemetry import Telemetry

CHANNEL_OPTIONS: list[tuple[str, object]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
# A target naming replicas (`dns:///…`, `ipv4:a:p,b:p`) spreads calls over all of them. A plain
# `host:port` keeps pick_first: after a restart its channel reconnects on the next call, where
# round_robin fails calls fast for its reconnect backoff (a second or more).
BALANCED: list[tuple[str, object]] = [("grpc.lb_policy_name", "round_robin")]
REPLICA_SCHEMES = ("dns:", "ipv4:", "ipv6:")


class _BearerAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


class _Bearer:
    """Adds the token on plaintext channels (call credentials need TLS)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: ClientCallDetails) -> ClientCallDetails:
        # At run time aio's call details are a namedtuple; the stubs declare only its fields.
        return details._replace(metadata=list(details.metadata or ()) + [self._header])  # type: ignore[attr-defined]


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Requests = AsyncIterable[_Request] | Iterable[_Request]


# grpc.aio files each interceptor under its first matching kind only: one class per kind.
class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
            self, continuation: Callable[[ClientCallDetails, _Request], Awaitable[UnaryUnaryCall[_Request, _Response]]],
            details: ClientCallDetails, request: _Request) -> UnaryUnaryCall[_Request, _Response]:
        return await continuation(self._with_token(details), request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
            self, continuation: Callable[[ClientCallDetails, _Request],
                                         Awaitable[UnaryStreamCall[_Request, _Response]]],
            details: ClientCallDetails, request: _Request) -> UnaryStreamCall[_Request, _Response]:
        return await continuation(self._with_token(details), request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
            self, continuation: Callable[[ClientCallDetails, _Requests[_Request]],
                                         Awaitable[StreamUnaryCall[_Request, _Response]]],
            details: ClientCallDetails, request_iterator: _Requests[_Request]) -> StreamUnaryCall[_Request, _Response]:
        return await continuation(self._with_token(details), request_iterator)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
            self, continuation: Callable[[ClientCallDetails, _Requests[_Request]],
                                         Awaitable[StreamStreamCall[_Request, _Response]]],
            details: ClientCallDetails, request_iterator: _Requests[_Request]) -> StreamStreamCall[_Request, _Response]:
        return await continuation(self._with_token(details), request_iterator)


def open_channel(addr: str, *, token: str | None, ca_file: str = "",
                 interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    """A channel to `addr` sending `token` on every call (TLS when a CA file is given), through
    `interceptors` (outermost first) before the token is added."""
    if ca_file:
        with open(ca_file, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        if token:
            creds = grpc.composite_channel_credentials(creds, grpc.metadata_call_credentials(_BearerAuth(token)))
        return grpc.aio.secure_channel(addr, creds, options=_options(addr), interceptors=list(interceptors) or None)
    kinds = (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)
    bearer: list[grpc.aio.ClientInterceptor] = [kind(token) for kind in kinds] if token else []
    return grpc.aio.insecure_channel(addr, options=_options(addr), interceptors=[*interceptors, *bearer])


def _options(target: str) -> list[tuple[str, object]]:
    return CHANNEL_OPTIONS + BALANCED if target.startswith(REPLICA_SCHEMES) else CHANNEL_OPTIONS


def service_channel(settings: Settings, caller: str, target: str, telemetry: Telemetry | None = None) -> grpc.aio.Channel:
    """The channel service `caller` uses to reach service `target` ("segment", "campaign", ...),
    its calls traced and counted by the caller's `telemetry`."""
    return open_channel(settings.target(target), token=service_token(settings.api_secret, caller),
                        ca_file=settings.tls_ca_file,
                        interceptors=telemetry.client_interceptors() if telemetry is not None else ())
