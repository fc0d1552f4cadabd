"""Free ports come from below the kernel's ephemeral range, where no outgoing connection can take them."""

from __future__ import annotations

import socket
from pathlib import Path

from tcpmesh.runtime.ports import LOW, free_ports


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(50)
    assert len(set(ports)) == 50
    if ephemeral - LOW > 1_000:
        assert all(LOW <= p < ephemeral for p in ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("0.0.0.0", port))
            sock.listen()
    # A port held by a listener is never handed out.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", ports[0]))
        held.listen()
        for _ in range(20):
            assert ports[0] not in free_ports(50)
