"""Which push endpoints Herald may call: https URLs of public hosts, unless private ones are allowed."""

from __future__ import annotations

import ipaddress

import pytest

from services.kit.endpoints import EndpointRefused, is_public, parse_endpoint, public_addresses


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False),  # cloud metadata
    ("100.64.0.1", False),  # shared address space (carrier NAT)
    ("192.0.2.1", False), ("0.0.0.0", False), ("255.255.255.255", False), ("224.0.0.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:93.184.216.34", True),
])
def test_public_addresses_are_those_of_the_internet(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("url", [
    "https://push.example.com/x", "https://93.184.216.34:8443/a?b=c", "https://[2001:4860:4860::8888]/x",
])
def test_https_urls_of_public_or_named_hosts_parse(url):
    assert parse_endpoint(url, allow_private=False).scheme == "https"


@pytest.mark.parametrize("url, allow_private, why", [
    ("http://push.example.com/x", False, "https"),
    ("https://10.0.0.1/x", False, "private"),
    ("https://[::ffff:127.0.0.1]/x", False, "private"),
    ("https://u:p@push.example.com/x", True, "credentials"),
    ("ftp://push.example.com/x", True, "http or https"),
    ("https://push.example.com:0/x", True, "port 0"),
    ("https://push.example.com:99999/x", True, "not a valid URL"),
    ("https://push.example.com/a b", True, "spaces"),
    ("https:///x", True, "host"),
])
def test_other_urls_are_refused_saying_why(url, allow_private, why):
    with pytest.raises(EndpointRefused, match=why):
        parse_endpoint(url, allow_private=allow_private)


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed():
    with pytest.raises(EndpointRefused, match="private"):
        await public_addresses("localhost", 443, allow_private=False)
    assert all(not is_public(a) for a in await public_addresses("localhost", 443, allow_private=True))
