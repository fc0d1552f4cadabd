"""The address a sidecar's outbound listener uses for each service (istiod: the Service VIP).

A Kubernetes Service's ``clusterIP`` or a ServiceEntry's single ``addresses`` entry is used as written.
Without one, tcpmesh assigns a loopback address from a "service network", in sorted-hostname order,
like a cluster's service CIDR allocator. The assignment is a pure function of the config, so the
translator (listeners) and the local runtime (which tells users where to connect) agree without talking.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from tcpmesh.model.config import Config
from tcpmesh.translator.names import DEFAULT_DOMAIN
from tcpmesh.translator.services import MeshService, services_of

__all__ = ["DEFAULT_SERVICE_NETWORK", "MAX_SERVICE_ADDRESSES", "service_addresses", "service_addresses_of"]

DEFAULT_SERVICE_NETWORK = "127.255.0.0"
"""First assigned service address is 127.255.0.1; pods start at 127.0.1.1, so the two never meet."""
MAX_SERVICE_ADDRESSES = 65_000
"""Services beyond this many without an address get none (and so no sidecar listener)."""


def _explicit(svc: MeshService) -> str | None:
    """The service's own address: a plain IP, a /32 (/128) turned into one, or a CIDR kept as a CIDR."""
    for raw in svc.addresses:
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            continue
        if net.num_addresses == 1:
            return str(net.network_address)
        return str(net)
    return None


def service_addresses(
    services: Sequence[MeshService], service_network: str = DEFAULT_SERVICE_NETWORK
) -> dict[str, str]:
    """hostname → listen address (an IP, or a CIDR for ServiceEntries that name a range).

    The first service of a hostname wins, as in the index; assigned addresses count up from
    ``service_network`` + 1 over the address-less hostnames in sorted order.
    """
    base = int(ipaddress.IPv4Address(service_network))
    out: dict[str, str] = {}
    assigned = 0
    for svc in sorted(services, key=lambda s: (s.hostname, s.namespace)):
        if svc.hostname in out:
            continue
        explicit = _explicit(svc)
        if explicit is not None:
            out[svc.hostname] = explicit
        elif assigned < MAX_SERVICE_ADDRESSES:
            assigned += 1
            out[svc.hostname] = str(ipaddress.IPv4Address(base + assigned))
    return out


def service_addresses_of(
    config: Config, service_network: str = DEFAULT_SERVICE_NETWORK, domain: str = DEFAULT_DOMAIN
) -> dict[str, str]:
    """The same assignment straight from a config, for the runtime."""
    return service_addresses(services_of(config, domain), service_network)
