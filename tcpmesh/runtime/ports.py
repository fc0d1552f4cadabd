"""Pick free loopback ports."""

from __future__ import annotations

import socket
from contextlib import ExitStack

__all__ = ["free_port", "free_ports"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host``.

    Another process can take it before the caller binds it; where the server can bind port 0 itself and
    report the port (Envoy's ``--admin-address-path``, ``/listeners``), prefer that. Two calls can return the
    same port (the kernel may hand a just-closed port out again): take several at once with ``free_ports``.
    """
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free a moment ago: every socket stays bound until all are picked."""
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports
