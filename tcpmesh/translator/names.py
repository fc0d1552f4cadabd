"""Every name istiod gives an Envoy resource, in one place (pilot/pkg/model/service.go BuildSubsetKey)."""

from __future__ import annotations

import ipaddress

__all__ = [
    "BLACKHOLE_CLUSTER",
    "DEFAULT_DOMAIN",
    "WILDCARD_BIND",
    "cluster_name",
    "is_ip",
    "kube_service_fqdn",
    "listener_name",
    "resolve_gateway_name",
    "resolve_short_name",
]

DEFAULT_DOMAIN = "cluster.local"
WILDCARD_BIND = "0.0.0.0"
BLACKHOLE_CLUSTER = "BlackHoleCluster"


def cluster_name(port: int, subset: str, hostname: str, direction: str = "outbound") -> str:
    """``outbound|<port>|<subset>|<fqdn>``; the port is the *service* port, never the targetPort."""
    return f"{direction}|{port}|{subset}|{hostname}"


def listener_name(bind: str, port: int) -> str:
    """Gateway listeners are ``<bind>_<port>`` (gateway.go getListenerName)."""
    return f"{bind or WILDCARD_BIND}_{port}"


def kube_service_fqdn(name: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    return f"{name}.{namespace}.svc.{domain}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def resolve_short_name(host: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """istiod's ResolveShortnameToFQDN: only a host without any dot gets ``.<ns>.svc.<domain>``.

    ``tcp-echo`` → ``tcp-echo.default.svc.cluster.local``; ``tcp-echo.default`` stays as written.
    """
    if not host or host == "*" or "." in host:
        return host
    if ":" in host and is_ip(host):  # an IP without a dot is IPv6 (ip_address is slow: test cheap cases first)
        return host
    return f"{host}.{namespace}.svc.{domain}"


def resolve_gateway_name(gateway: str, namespace: str) -> str:
    """Resolve a VirtualService ``gateways`` entry to ``ns/name`` (model/config.go resolveGatewayName).

    ``mesh`` stays ``mesh``; ``name`` and ``./name`` are in the VirtualService's namespace; the legacy
    ``name.ns.svc.cluster.local`` (or ``name.ns``) form becomes ``ns/name``.
    """
    if gateway == "mesh":
        return gateway
    if "/" in gateway:
        ns, _, name = gateway.partition("/")
        return f"{namespace if ns == '.' else ns}/{name}"
    if "." in gateway:
        parts = gateway.split(".")
        return f"{parts[1]}/{parts[0]}"
    return f"{namespace}/{gateway}"
