"""free_port: ports a child process can still bind when it starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.kit.probes import free_port


def test_ports_are_distinct_bindable_and_below_the_kernels_ephemeral_range():
    """Below the range the kernel gives outgoing connections their local ports from, so none
    of those can take a port between free_port and the child's bind (a CI run failed so)."""
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.exists():
        pytest.skip("Linux's ephemeral port range")
    low = int(range_file.read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports), (low, ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
