"""Pick free loopback ports, below the kernel's ephemeral range.

A port the kernel hands out for bind(0) comes from its ephemeral range, the same range every outgoing
connection takes its local port from: on a busy machine (load loops, parallel tests) such a port is soon used by
some client socket, and a listener then cannot bind it (Envoy rejects a whole LDS update for one listener it
cannot bind). Ports are therefore picked at random between LOW and the ephemeral range, where no outgoing
connection goes, when that range has room; otherwise from bind(0) as before.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

__all__ = ["free_port", "free_ports"]

LOW = 10_000
"""Below it are the well-known and registered ports other software on the machine expects to own."""
ATTEMPTS = 200


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host`` (and on every address).

    Another process can take it before the caller binds it; where the server can bind port 0 itself and
    report the port (Envoy's ``--admin-address-path``, ``/listeners``), prefer that. Take several at once with
    ``free_ports``: they are distinct.
    """
    return free_ports(1, host)[0]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free a moment ago: every socket stays bound until all are picked."""
    high = _ephemeral_low()
    rng = random.Random()  # seeded from the OS: parallel test processes pick different ports
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(ATTEMPTS * count if high - LOW > 1_000 else 0):
            if len(ports) == count:
                return ports
            port = rng.randrange(LOW, high)
            if port in ports:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("0.0.0.0", port))  # free on every address, as a 0.0.0.0 listener will need
            except OSError:
                sock.close()
                continue
            stack.enter_context(sock)
            ports.append(port)
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports
