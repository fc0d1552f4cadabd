"""ClusterLoadAssignments: the workloads a service selects, narrowed by subset labels
(pilot/pkg/xds/endpoints/endpoint_builder.go)."""

from __future__ import annotations

import ipaddress
import re
from itertools import groupby
from typing import Any

from tcpmesh.model.resources import selector_matches
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
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""A canonical dotted quad: ASCII decimal octets, no leading zero, at most 255 (``ipaddress`` accepts it)."""


def _is_ip(address: str) -> bool:
    """``ipaddress.ip_address`` accepts it. Canonical dotted quads, the common case, are accepted without it."""
    if _DOTTED_QUAD.fullmatch(address):
        return True
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


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

    __slots__ = ("_eds", "_labels", "_messages", "_one_locality", "_port", "_service", "endpoints")

    def __init__(self, index: Index, service: MeshService, port: SvcPort) -> None:
        self._service = service
        self._port = port
        self.endpoints = endpoints = index.endpoints(service, port)  # sorted by (address, port)
        self._labels = [dict(ep.labels) for ep in endpoints]
        self._eds = [ep.address.startswith(_UDS) or _is_ip(ep.address) for ep in endpoints]
        self._messages = [_lb_endpoint(index, ep, service.hostname) for ep in endpoints]
        self._one_locality = len({ep.locality for ep in endpoints}) <= 1

    def serves(self, service: MeshService, port: SvcPort) -> bool:
        """These are the endpoints of ``service`` (this very object) on ``port``."""
        return self._service is service and self._port == port

    def load_assignment(self, subset_labels: tuple[tuple[str, str], ...], cluster: str, *, inline: bool = False) -> Any:
        """Endpoints grouped by locality (sorted), each locality weighted by the sum of its endpoints' weights.

        EDS carries only IP (or ``unix://``) endpoints: hostname endpoints, e.g. of a STATIC ServiceEntry, are
        dropped (istiod's endpoint builder); the ``inline`` assignment of a DNS cluster keeps them for Envoy to
        resolve. An empty assignment is still sent: Envoy needs it to finish warming the cluster.
        """
        labels, eds = self._labels, self._eds
        selected = [i for i in range(len(labels)) if (inline or eds[i]) and selector_matches(subset_labels, labels[i])]
        out = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
        if not selected:
            return out
        endpoints, messages = self.endpoints, self._messages
        if not self._one_locality:
            # Stable: the endpoints are already in (address, port) order, so this is (locality, address, port).
            selected.sort(key=lambda i: endpoints[i].locality)
        for locality, group in groupby(selected, key=lambda i: endpoints[i].locality):
            members = list(group)
            localities = out.endpoints.add()
            if locality:
                localities.locality.CopyFrom(_locality(locality))
            lb_endpoints = localities.lb_endpoints
            for i in members:
                lb_endpoints.add().CopyFrom(messages[i])
            localities.load_balancing_weight.value = sum(endpoints[i].weight for i in members)
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
