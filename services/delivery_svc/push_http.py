"""The HTTP client that sends pushes. Endpoints are registered by API callers, so unless
`HERALD_PUSH_ALLOW_PRIVATE` is on it connects only to public addresses: the host name of each
new connection is resolved and vetted at that moment (kit/endpoints), and the connection goes to
a vetted address, so a name that resolved to a public address when the device was stored cannot
lead into the service's own network later (DNS rebinding). No proxies from the environment, no
redirects followed.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from services.kit.endpoints import EndpointRefused, public_addresses

MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20


class _PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting to a host's addresses only when all are public."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in await public_addresses(host, port, allow_private=False):
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EndpointRefused("push endpoints are never unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PublicOnlyTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx has no hook for where a connection goes; its connection pool (httpcore) has one.
        # This is the pool httpx builds, with the vetting network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS, network_backend=_PublicOnlyBackend())


def push_client(*, allow_private: bool, timeout_s: float) -> httpx.AsyncClient:
    transport = (httpx.AsyncHTTPTransport(trust_env=False, limits=httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS))
                 if allow_private else _PublicOnlyTransport())
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False)
