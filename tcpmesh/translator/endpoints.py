"""ClusterLoadAssignments: the workloads a service selects, narrowed by subset labels
(pilot/pkg/xds/endpoints/endpoint_builder.go)."""

from __future__ import annotations

import ipaddress
from itertools import groupby
from typing import Any

from tcpmesh.translator.index import Endpoint, Index
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.protos import (
    address_pb2,
    base_pb2,
    endpoint_components_pb2,
    endpoint_pb2,
    health_check_pb2,
    u32,
)
from tcpmesh.translator.services import MeshService, SvcPort

__all__ = ["PortEndpoints", "build_load_assignment"]


def _locality(text: str) -> Any:
    region, zone, subzone = [*text.split("/"), "", "", ""][:3]
    return base_pb2.Locality(region=region, zone=zone, sub_zone=subzone)


_UDS = "unix://"


def _is_ip(address: str) -> bool:
    """``ipaddress.ip_address`` accepts it. Canonical dotted quads, the common case, are accepted without it."""
    parts = address.split(".")
    if len(parts) == 4 and all(
        p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") and int(p) < 256 for p in parts
    ):
        return True
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _octet(part: str) -> bool:
    """A decimal octet as ``ipaddress`` accepts it: ASCII digits, no leading zero, at most 255."""
    return part.isascii() and part.isdigit() and (part == "0" or part[0] != "0") and int(part) < 256


def _lb_prototype(options: TranslateOptions) -> Any:
    """An LbEndpoint as every endpoint starts (address, weight and metadata to set)."""
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address_pb2.Address()),
        health_status=health_check_pb2.HEALTHY,
        load_balancing_weight=u32(0),
    )


def _lb_endpoint(index: Index, ep: Endpoint, hostname: str) -> Any:
    out = endpoint_components_pb2.LbEndpoint()
    out.CopyFrom(index.prototype("lb_endpoint", _lb_prototype))
    address = out.endpoint.address
    if ep.address.startswith(_UDS):
        # A ``unix://`` WorkloadEntry address is a pipe (it takes precedence over every port).
        address.pipe.SetInParent()
        address.pipe.path = ep.address[len(_UDS) :]
    else:
        socket = address.socket_address
        socket.SetInParent()
        socket.address = ep.address
        socket.port_value = ep.port
    out.load_balancing_weight.value = ep.weight
    if ep.workload:
        # istio.workload = "<workload>;<ns>;<canonical-service>;<canonical-revision>;<cluster>"
        canonical = dict(ep.labels)
        workload = ";".join(
            [
                ep.workload,
                ep.namespace,
                canonical.get("app", hostname.split(".")[0]),
                canonical.get("version", "latest"),
                "Kubernetes",
            ]
        )
        out.metadata.filter_metadata["istio"].fields["workload"].string_value = workload
    return out


class PortEndpoints:
    """The endpoints of one service port, and their LbEndpoint messages built once for all its subsets."""

    __slots__ = ("_built", "_index", "_port", "_service", "endpoints")

    def __init__(self, index: Index, service: MeshService, port: SvcPort) -> None:
        self._index = index
        self._service = service
        self._port = port
        self.endpoints = index.endpoints(service, port)
        self._built: dict[int, tuple[bool, Any]] = {}

    def serves(self, service: MeshService, port: SvcPort) -> bool:
        """These are the endpoints of ``service`` (this very object) on ``port``."""
        return self._service is service and self._port == port

    def _message(self, position: int) -> tuple[bool, Any]:
        """(EDS may carry it, its LbEndpoint) for the endpoint at ``position``."""
        found = self._built.get(position)
        if found is None:
            ep = self.endpoints[position]
            eds = ep.address.startswith(_UDS) or _is_ip(ep.address)
            found = self._built[position] = (eds, _lb_endpoint(self._index, ep, self._service.hostname))
        return found

    def load_assignment(self, subset_labels: tuple[tuple[str, str], ...], cluster: str, *, inline: bool = False) -> Any:
        """Endpoints grouped by locality (sorted), each locality weighted by the sum of its endpoints' weights.

        EDS carries only IP (or ``unix://``) endpoints: hostname endpoints, e.g. of a STATIC ServiceEntry, are
        dropped (istiod's endpoint builder); the ``inline`` assignment of a DNS cluster keeps them for Envoy to
        resolve. An empty assignment is still sent: Envoy needs it to finish warming the cluster.
        """
        selected: list[tuple[Endpoint, Any]] = []
        for position, ep in enumerate(self.endpoints):
            if ep.matches(subset_labels):
                eds, message = self._message(position)
                if inline or eds:
                    selected.append((ep, message))
        selected.sort(key=lambda item: (item[0].locality, item[0].address, item[0].port))
        out = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
        for locality, group in groupby(selected, key=lambda item: item[0].locality):
            members = list(group)
            localities = out.endpoints.add()
            if locality:
                localities.locality.CopyFrom(_locality(locality))
            localities.lb_endpoints.extend([message for _, message in members])
            localities.load_balancing_weight.value = sum(ep.weight for ep, _ in members)
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
    """The ClusterLoadAssignment of one cluster (see ``PortEndpoints.load_assignment``)."""
    return PortEndpoints(index, service, port).load_assignment(subset_labels, cluster, inline=inline)
