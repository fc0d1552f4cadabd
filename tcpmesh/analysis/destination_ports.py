"""Route destination ports: a port the service does not expose (TM0104), or an omitted port on a multi-port
service (TM0105), where istiod falls back to the gateway server port (route.go GetDestinationCluster)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import DESTINATION_PORT_AMBIGUOUS, DESTINATION_PORT_NOT_FOUND
from tcpmesh.analysis.context import Context, Destination, route_destinations, rule_servers, services_for_host
from tcpmesh.analysis.findings import Finding
from tcpmesh.translator.services import MeshService

__all__ = ["analyze_destination_ports"]


def analyze_destination_ports(ctx: Context) -> Iterator[Finding]:
    for vs in ctx.config.virtual_services:
        for dest in route_destinations(ctx, vs):
            services = services_for_host(ctx, dest.host) if dest.host else []
            if len(services) != 1:
                continue  # unknown host is TM0101; a wildcard naming several services has no single port list
            yield from _check(ctx, dest, services[0])


def _describe(svc: MeshService) -> str:
    ports = ", ".join(str(p.number) for p in svc.ports) or "none"
    return f"{svc.kind} {svc.namespace}/{svc.name} (ports: {ports})"


def _check(ctx: Context, dest: Destination, svc: MeshService) -> Iterator[Finding]:
    meta = dest.vs.meta
    port = dest.route.destination.port
    if port:
        if svc.port(port) is None:
            yield DESTINATION_PORT_NOT_FOUND.at(
                meta, f"{dest.at}.port", f"port {port} is not exposed by {_describe(svc)}"
            )
        return
    if len(svc.ports) <= 1:
        return  # the service's only port is used
    listener_ports = sorted({server.port.number for _, server in rule_servers(ctx, dest.vs, dest.rule)})
    missing = [p for p in listener_ports if svc.port(p) is None]
    path = dest.at
    if missing:
        yield DESTINATION_PORT_NOT_FOUND.at(
            meta,
            path,
            f"destination port omitted: istiod uses the gateway port {', '.join(map(str, missing))}, "
            f"which is not exposed by {_describe(svc)}; set destination.port",
        )
    elif listener_ports:  # on sidecars (mesh) the listener port is the service port itself: nothing to guess
        yield DESTINATION_PORT_AMBIGUOUS.at(
            meta,
            path,
            f"destination port omitted while {_describe(svc)} has several ports: the gateway server port is "
            "used; set destination.port",
        )
