"""Pick free loopback ports."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host``.

    Another process can take it before the caller binds it; where the server can bind port 0 itself and
    report the port (Envoy's ``--admin-address-path``, ``/listeners``), prefer that.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
