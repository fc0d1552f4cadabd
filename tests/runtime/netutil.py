"""Shared helpers for the runtime tests: loopback TCP clients with deadlines."""

from __future__ import annotations

import socket
import time


def connect(host: str, port: int, *, timeout: float = 5.0) -> socket.socket:
    """Connect with a deadline; every later recv/send on the socket is bounded by the same timeout."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes or fail (EOF or the socket timeout)."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"EOF after {len(data)} of {size} bytes: {bytes(data)!r}")
        data += chunk
    return bytes(data)


def recv_until_eof(sock: socket.socket, *, timeout: float = 5.0) -> bytes:
    """Read until the peer closes, within ``timeout`` seconds overall."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def exchange(host: str, port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``payload``, half-close (like ``echo hello | nc -N``), return everything until EOF."""
    with connect(host, port, timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_until_eof(sock, timeout=timeout)
