"""Where Herald may send a push: `https` URLs of public hosts only, so that a registered device
cannot make the delivery service call into its own network (SSRF). `HERALD_PUSH_ALLOW_PRIVATE`
lifts both rules (tests, on-premise gateways).

An endpoint is checked when it is registered (segment_svc) and again on every connection
(delivery_svc), since what a host name resolves to can change in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from services.kit.limits import MAX_ENDPOINT

# Resolving one host name gives up after this long (the caller may retry).
RESOLVE_TIMEOUT_S = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(Exception):
    """The endpoint is not one Herald may send to; the message says why, for the caller."""


class ResolveUnavailable(Exception):
    """The host name could not be resolved now (a temporary DNS failure or a timeout)."""


def parse_endpoint(url: str, *, allow_private: bool) -> SplitResult:
    """The URL split into parts, or EndpointRefused saying what is wrong with it. A host given as
    an IP address is checked here; a host name needs `public_addresses`."""
    if len(url) > MAX_ENDPOINT:
        raise EndpointRefused(f"must be at most {MAX_ENDPOINT} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise EndpointRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # a port out of range raises ValueError
    except ValueError:
        raise EndpointRefused("is not a valid URL") from None
    if port == 0:
        raise EndpointRefused("must not use port 0")
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise EndpointRefused("must be an https URL" if not allow_private else "must be an http or https URL")
    if not parts.hostname:
        raise EndpointRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("must not carry credentials (user:password@)")
    literal = ip_literal(parts.hostname)
    if literal is not None and not allow_private and not is_public(literal):
        raise EndpointRefused(f"must not address a private, loopback or reserved host ({literal})")
    return parts


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet: not private, loopback, link-local (cloud
    metadata), shared, reserved, multicast or unspecified; an IPv4-mapped IPv6 address is judged
    by its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to, in the resolver's order, without duplicates.
    EndpointRefused when the name does not exist; ResolveUnavailable when DNS fails for now."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise ResolveUnavailable(f"resolving {host} timed out") from None
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise ResolveUnavailable(f"resolving {host} failed for now: {exc.strerror}") from None
        raise EndpointRefused(f"names a host that does not resolve ({host})") from None
    # sockaddr[0] is the address as text; an IPv6 one may carry a "%zone" suffix.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(addresses))


async def public_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for `host`: all of them must be public unless private ones are
    allowed (a name that resolves to one private address is refused, whatever else it lists)."""
    addresses = await resolve(host, port)
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise EndpointRefused(f"names a host that resolves to a private, loopback or reserved "
                                  f"address ({host} → {private[0]})")
    return addresses


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)
