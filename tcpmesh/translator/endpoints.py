"""ClusterLoadAssignments: the workloads a service selects, narrowed by subset labels
(pilot/pkg/xds/endpoints/endpoint_builder.go)."""

from __future__ import annotations

import ipaddress
from itertools import groupby
from typing import Any

from tcpmesh.translator.index import Endpoint, Index
from tcpmesh.translator.protos import (
    address_pb2,
    base_pb2,
    endpoint_components_pb2,
    endpoint_pb2,
    health_check_pb2,
    socket_address,
    struct,
    u32,
)
from tcpmesh.translator.services import MeshService, SvcPort

__all__ = ["build_load_assignment"]


def _locality(text: str) -> Any:
    region, zone, subzone = [*text.split("/"), "", "", ""][:3]
    return base_pb2.Locality(region=region, zone=zone, sub_zone=subzone)


_UDS = "unix://"


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _address(ep: Endpoint) -> Any:
    """A ``unix://`` WorkloadEntry address is a pipe (it takes precedence over every port)."""
    if ep.address.startswith(_UDS):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=ep.address[len(_UDS) :]))
    return socket_address(ep.address, ep.port)


def _lb_endpoint(ep: Endpoint, hostname: str) -> Any:
    out = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=_address(ep)),
        health_status=health_check_pb2.HEALTHY,
        load_balancing_weight=u32(ep.weight),
    )
    if ep.workload:
        # istio.workload = "<workload>;<ns>;<canonical-service>;<canonical-revision>;<cluster>"
        canonical = dict(ep.labels)
        out.metadata.CopyFrom(
            base_pb2.Metadata(
                filter_metadata={
                    "istio": struct(
                        {
                            "workload": ";".join(
                                [
                                    ep.workload,
                                    ep.namespace,
                                    canonical.get("app", hostname.split(".")[0]),
                                    canonical.get("version", "latest"),
                                    "Kubernetes",
                                ]
                            )
                        }
                    )
                }
            )
        )
    return out


def build_load_assignment(
    index: Index,
    service: MeshService,
    port: SvcPort,
    subset_labels: tuple[tuple[str, str], ...],
    cluster: str,
    *,
    inline: bool = False,
) -> Any:
    """Endpoints grouped by locality (sorted), each locality weighted by the sum of its endpoints' weights.

    EDS carries only IP (or ``unix://``) endpoints: hostname endpoints, e.g. of a STATIC ServiceEntry, are dropped
    (istiod's endpoint builder); the ``inline`` assignment of a DNS cluster keeps them for Envoy to resolve.
    An empty assignment is still sent: Envoy needs it to finish warming the cluster.
    """
    selected = [
        ep
        for ep in index.endpoints(service, port)
        if ep.matches(subset_labels) and (inline or _is_ip(ep.address) or ep.address.startswith(_UDS))
    ]
    selected.sort(key=lambda e: (e.locality, e.address, e.port))
    localities = []
    for locality, group in groupby(selected, key=lambda e: e.locality):
        members = list(group)
        localities.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=_locality(locality) if locality else None,
                lb_endpoints=[_lb_endpoint(ep, service.hostname) for ep in members],
                load_balancing_weight=u32(sum(ep.weight for ep in members)),
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster, endpoints=localities)
