"""The Host-header domains of a sidecar's virtual host for a service (pilot httproute.go
generateVirtualHostDomains / GenerateAltVirtualHosts / generateAltVirtualHostsForKubernetesService).

Sidecars set ``ignore_port_in_host_matching``, so no ``host:port`` variants are generated. For
``reviews.default.svc.cluster.local`` seen from a proxy in ``default``: the FQDN, its absolute form
``reviews.default.svc.cluster.local.``, the short names ``reviews``, ``reviews.default.svc``,
``reviews.default``, then the service's address. From another namespace the bare ``reviews`` is left out.
"""

from __future__ import annotations

from tcpmesh.translator.names import is_ip

__all__ = ["alt_hosts", "proxy_dns_domain", "service_domains"]


def proxy_dns_domain(namespace: str, domain: str) -> str:
    """model.Proxy.DNSDomain: ``<namespace>.svc.<cluster domain>``."""
    return f"{namespace}.svc.{domain}"


def _kube_alt_hosts(hostname: str, proxy_domain: str) -> list[str]:
    before = proxy_domain.partition(".svc.")[0]
    ih = hostname.find(".svc.")
    if ih <= 0:
        return []  # the proxy is in Kubernetes, the service is not: no short names
    ns = hostname.find(".")
    if ns + 1 >= len(hostname) or ns + 1 > ih:
        return []  # "Invalid domain"
    if hostname[ns + 1 : ih] == before:  # same namespace
        return [hostname[:ns], hostname[:ih] + ".svc", hostname[:ih]]
    return [hostname[:ih], hostname[:ih] + ".svc"]


def alt_hosts(hostname: str, proxy_domain: str) -> list[str]:
    """GenerateAltVirtualHosts without ports: the absolute FQDN (PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN, on by
    default), then the Kubernetes short names when the service shares the proxy's ``.svc.<domain>`` suffix."""
    out = [] if is_ip(hostname) else [hostname + "."]
    idx = proxy_domain.find(".svc.")
    if idx > 0 and hostname.endswith(proxy_domain[idx:]):
        out.extend(_kube_alt_hosts(hostname, proxy_domain))
    return out


def service_domains(hostname: str, address: str | None, proxy_domain: str) -> tuple[list[str], list[str]]:
    """(domains, the alternate hosts among them) for one service, as generateVirtualHostDomains orders them."""
    alts = alt_hosts(hostname, proxy_domain)
    domains = [hostname, *alts]
    if address and address != "0.0.0.0":
        domains.append(address)
    return domains, alts
