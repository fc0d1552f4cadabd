"""The service registry istiod builds from Kubernetes Services and ServiceEntries (model.Service)."""

from __future__ import annotations

from dataclasses import dataclass

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Labels, WorkloadSpec
from tcpmesh.translator.names import DEFAULT_DOMAIN, kube_service_fqdn

__all__ = ["MeshService", "SvcPort", "services_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SvcPort:
    number: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshService:
    hostname: str
    name: str
    namespace: str
    ports: tuple[SvcPort, ...]
    kind: str
    """"Service" or "ServiceEntry"."""
    resolution: str = "STATIC"
    """ServiceEntry resolution (NONE, STATIC, DNS, DNS_ROUND_ROBIN); Kubernetes Services are STATIC (EDS)."""
    mesh_external: bool = False
    addresses: tuple[str, ...] = ()
    selector: Labels | None = None
    inline_endpoints: tuple[WorkloadSpec, ...] = ()
    external_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    """ServiceEntry subjectAltNames: the SANs a DestinationRule's SIMPLE/MUTUAL tls checks when it names none."""

    def port(self, number: int) -> SvcPort | None:
        return next((p for p in self.ports if p.number == number), None)


def services_of(config: Config, domain: str = DEFAULT_DOMAIN) -> tuple[MeshService, ...]:
    """Every service, ordered by hostname then namespace; a later duplicate hostname does not replace the first."""
    out: dict[tuple[str, str], MeshService] = {}
    for svc in config.services:
        hostname = kube_service_fqdn(svc.meta.name, svc.meta.namespace, domain)
        ports = tuple(
            SvcPort(
                number=p.port,
                name=p.name,
                protocol=_kube_protocol(p.name, p.app_protocol, p.protocol),
                target_port=p.target_port,
            )
            for p in svc.ports
        )
        out.setdefault(
            (hostname, svc.meta.namespace),
            MeshService(
                hostname=hostname,
                name=svc.meta.name,
                namespace=svc.meta.namespace,
                ports=ports,
                kind="Service",
                addresses=(svc.cluster_ip,) if svc.cluster_ip and svc.cluster_ip != "None" else (),
                selector=svc.selector,
                external_name=svc.external_name,
            ),
        )
    for se in config.service_entries:
        ports = tuple(
            SvcPort(number=p.number, name=p.name, protocol=p.protocol.upper() or "TCP", target_port=p.target_port)
            for p in se.ports
        )
        for host in se.hosts:
            out.setdefault(
                (host, se.meta.namespace),
                MeshService(
                    hostname=host,
                    name=host,
                    namespace=se.meta.namespace,
                    ports=ports,
                    kind="ServiceEntry",
                    resolution=se.resolution,
                    mesh_external=se.location == "MESH_EXTERNAL",
                    addresses=se.addresses,
                    selector=se.workload_selector,
                    inline_endpoints=se.endpoints,
                    subject_alt_names=se.subject_alt_names,
                ),
            )
    return tuple(out[k] for k in sorted(out))


def _kube_protocol(name: str, app_protocol: str, protocol: str) -> str:
    """Istio's protocol selection for Service ports: appProtocol, then the ``<proto>[-suffix]`` name prefix."""
    if protocol.upper() == "UDP":
        return "UDP"
    candidate = (app_protocol or name.split("-", 1)[0]).upper()
    known = {"HTTP", "HTTP2", "HTTPS", "GRPC", "GRPC-WEB", "TCP", "TLS", "MONGO", "MYSQL", "REDIS"}
    return candidate if candidate in known else "TCP"
