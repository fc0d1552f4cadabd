"""Mesh-wide settings the shell passes in (the translator reads no environment)."""

from __future__ import annotations

from dataclasses import dataclass

from tcpmesh.translator.names import DEFAULT_DOMAIN
from tcpmesh.translator.service_addresses import DEFAULT_SERVICE_NETWORK
from tcpmesh.translator.workloads import DEFAULT_POD_NETWORK

__all__ = ["TranslateOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslateOptions:
    domain: str = DEFAULT_DOMAIN
    pod_network: str = DEFAULT_POD_NETWORK
    service_network: str = DEFAULT_SERVICE_NETWORK
    """Where services without a VIP get their sidecar listener address (service_addresses.py)."""
    connect_timeout_ms: int = 10_000
    """meshConfig.connectTimeout (istiod's default 10s)."""
    gateway_transport_socket_connect_timeout_ms: int = 15_000
    """PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT (default 15s)."""
    dns_refresh_rate_ms: int = 60_000
    """meshConfig.dnsRefreshRate (default 60s)."""
    inline_weights: bool = False
    """istiod's exact form: tcp_proxy inline in the listener, so a route change drains live connections.
    The default delivers each tcp_proxy by ECDS instead (ecds.py): route changes reach new connections only."""
