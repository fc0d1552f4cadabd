"""Long-lived connections through Envoy, and what Envoy itself says it routes new connections with."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until

__all__ = ["Connect", "LiveConnections", "live_connections", "routed_weights", "tcp", "wait_no_drains", "wait_routed"]

TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


Connect = Callable[[], socket.socket]


def tcp(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> Connect:
    return lambda: socket.create_connection((host, port), timeout=timeout)


class LiveConnections:
    """``count`` connections that stay open; each remembers the backend (reply prefix) that answered first."""

    def __init__(self, connect: Connect, count: int) -> None:
        self.socks: list[socket.socket] = []
        self.readers: list[Any] = []
        self.backends: list[str] = []
        for i in range(count):
            sock = connect()
            self.socks.append(sock)
            self.readers.append(sock.makefile("rb"))
            self.backends.append(self._exchange(i, f"open-{i}").split(" ", 1)[0])

    def _exchange(self, i: int, text: str) -> str:
        self.socks[i].sendall(text.encode() + b"\n")
        return str(self.readers[i].readline().decode().strip())

    def check(self, tag: str) -> list[str]:
        """Send a line on every connection; the problems (closed, wrong backend), empty when all echo."""
        problems = []
        for i, backend in enumerate(self.backends):
            line = f"{tag}-{i}"
            try:
                reply = self._exchange(i, line)
            except OSError as exc:
                problems.append(f"connection {i}: {exc!r}")
                continue
            if reply != f"{backend} {line}":
                problems.append(f"connection {i} ({backend}): got {reply!r}")
        return problems

    def close(self) -> None:
        for reader, sock in zip(self.readers, self.socks, strict=True):
            reader.close()
            sock.close()


@contextmanager
def live_connections(connect: Connect | int, count: int) -> Iterator[LiveConnections]:
    """Open ``count`` connections (to a loopback port, or by ``connect``), closed on exit."""
    live = LiveConnections(tcp(connect) if isinstance(connect, int) else connect, count)
    try:
        yield live
    finally:
        live.close()


def _tcp_proxies(dump: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, TcpProxy) for every tcp_proxy Envoy holds: ECDS filter configs and inline listener filters."""
    for config in dump.get("configs", []):
        for item in config.get("ecds_filters", []):
            f = item.get("ecds_filter", {})
            if f.get("typed_config", {}).get("@type") == TCP_PROXY_TYPE:
                yield f.get("name", ""), f["typed_config"]
        for listener in config.get("dynamic_listeners", []):
            active = listener.get("active_state", {}).get("listener", {})
            for chain in active.get("filter_chains", []):
                for f in chain.get("filters", []):
                    if f.get("typed_config", {}).get("@type") == TCP_PROXY_TYPE:
                        yield active.get("name", ""), f["typed_config"]


def routed_weights(envoy: EnvoyProcess, where: str) -> dict[str, int]:
    """cluster → weight of the tcp_proxy whose listener or ECDS name starts with ``where`` (weight 1 if single)."""
    for name, proxy in _tcp_proxies(envoy.config_dump()):
        if name.startswith(where):
            if proxy.get("cluster"):
                return {proxy["cluster"]: 1}
            return {c["name"]: int(c.get("weight", 0)) for c in proxy.get("weighted_clusters", {}).get("clusters", [])}
    return {}


def wait_routed(envoy: EnvoyProcess, where: str, expected: dict[str, int], timeout: float = 30.0) -> None:
    wait_until(
        lambda: routed_weights(envoy, where) == expected,
        timeout=timeout,
        interval=0.05,
        what=f"Envoy to route {expected}",
    )


def wait_no_drains(envoy: EnvoyProcess, timeout: float = 30.0) -> None:
    """Until Envoy drains no listener and no filter chain: any cut a change causes has happened by then."""

    def idle() -> bool:
        stats = envoy.stats(filter="listener_manager.total_(filter_chains|listeners)_draining")
        return all(v == 0 for v in stats.values())

    wait_until(idle, timeout=timeout, interval=0.05, what="Envoy's listener drains to finish")
