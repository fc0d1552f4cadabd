"""ClusterLoadAssignments: the workloads a service selects, narrowed by subset labels
(pilot/pkg/xds/endpoints/endpoint_builder.go)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from tcpmesh.translator.encoded import Encoded
from tcpmesh.translator.index import Endpoint, Index
from tcpmesh.translator.protos import (
    address_pb2,
    base_pb2,
    endpoint_components_pb2,
    endpoint_pb2,
    health_check_pb2,
    wrappers_pb2,
)
from tcpmesh.translator.services import MeshService, SvcPort
from tcpmesh.translator.wire import (
    entry_prefix,
    key,
    number,
    string_entry,
    submessage,
    text,
    varint_field,
    varint_key,
)

__all__ = ["PortEndpoints", "build_load_assignment"]

_CLA = endpoint_pb2.ClusterLoadAssignment
_LLB = endpoint_components_pb2.LocalityLbEndpoints
_CLUSTER_NAME = key(number(_CLA, "cluster_name"))
_ENDPOINTS = key(number(_CLA, "endpoints"))
_LOCALITY = key(number(_LLB, "locality"))
_LB_ENDPOINTS = key(number(_LLB, "lb_endpoints"))
_LOCALITY_WEIGHT = key(number(_LLB, "load_balancing_weight"))
_VALUE = varint_key(number(wrappers_pb2.UInt32Value, "value"))
_MAX_U32 = 4294967295


def _locality_weight(weight: int) -> bytes:
    return submessage(_LOCALITY_WEIGHT, varint_field(_VALUE, weight))


_LOCALITY_WEIGHTS = tuple(_locality_weight(w) for w in range(128))
"""The load_balancing_weight field of a locality for the usual weights (sums of a few endpoints)."""


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


_LB = endpoint_components_pb2.LbEndpoint
_ENDPOINT = key(number(_LB, "endpoint"))
_HEALTHY = varint_field(varint_key(number(_LB, "health_status")), health_check_pb2.HEALTHY)
_LB_METADATA = key(number(_LB, "metadata"))
_LB_WEIGHT = key(number(_LB, "load_balancing_weight"))
_WEIGHT_ONE = submessage(_LB_WEIGHT, varint_field(_VALUE, 1))  # the usual weight
_ADDRESS = key(number(endpoint_components_pb2.Endpoint, "address"))
_SOCKET = key(number(address_pb2.Address, "socket_address"))
_PIPE = key(number(address_pb2.Address, "pipe"))
_PATH = key(number(address_pb2.Pipe, "path"))
_SOCKET_ADDRESS = key(number(address_pb2.SocketAddress, "address"))
_PORT_VALUE = varint_key(number(address_pb2.SocketAddress, "port_value"))
_FILTER_METADATA = key(number(base_pb2.Metadata, "filter_metadata"))
_ISTIO = text(key(1), "istio") + key(2)  # the filter_metadata entry's key, then its value's key
_WORKLOAD = entry_prefix("workload")


def _lb_endpoint(ep: Endpoint, hostname: str) -> bytes:
    """An LbEndpoint's deterministic bytes (wire.py): address, HEALTHY, the istio workload metadata, weight."""
    if ep.address.startswith(_UDS):
        # A ``unix://`` WorkloadEntry address is a pipe (it takes precedence over every port).
        address = submessage(_PIPE, text(_PATH, ep.address[len(_UDS) :]))
    else:
        address = submessage(_SOCKET, text(_SOCKET_ADDRESS, ep.address) + varint_field(_PORT_VALUE, ep.port))
    metadata = b""
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
        istio = submessage(_ISTIO, string_entry(_WORKLOAD, workload))
        metadata = submessage(_LB_METADATA, submessage(_FILTER_METADATA, istio))
    return b"".join(
        (
            submessage(_ENDPOINT, submessage(_ADDRESS, address)),
            _HEALTHY,
            metadata,
            _WEIGHT_ONE if ep.weight == 1 else submessage(_LB_WEIGHT, varint_field(_VALUE, ep.weight)),
        )
    )


class PortEndpoints:
    """The endpoints of one service port, and their LbEndpoints serialised once for all its subsets."""

    __slots__ = ("_eds_indices", "_labels", "_one_locality", "_port", "_service", "_wire", "endpoints")

    def __init__(self, index: Index, service: MeshService, port: SvcPort) -> None:
        self._service = service
        self._port = port
        self.endpoints = endpoints = index.endpoints(service, port)  # sorted by (address, port)
        # Subset selection as set inclusion: labels come from a mapping (one value per key), so a selector's
        # pairs are all among an endpoint's exactly when selector_matches.
        self._labels = [frozenset(ep.labels) for ep in endpoints]
        # What EDS may carry: IP (or ``unix://``) endpoints.
        self._eds_indices = [i for i, ep in enumerate(endpoints) if ep.address.startswith(_UDS) or _is_ip(ep.address)]
        # Each LbEndpoint serialised once, as the field of a LocalityLbEndpoints: the assignments of all the
        # port's subsets are assembled from these bytes and parsed once each (wire.py).
        self._wire = [submessage(_LB_ENDPOINTS, _lb_endpoint(ep, service.hostname)) for ep in endpoints]
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
        labels = self._labels
        candidates: Sequence[int] = range(len(labels)) if inline else self._eds_indices
        if subset_labels:
            wanted = frozenset(subset_labels)
            selected: Sequence[int] = [i for i in candidates if wanted <= labels[i]]
        else:
            selected = candidates
        name = text(_CLUSTER_NAME, cluster)
        if not selected:
            return Encoded(_CLA, name, cluster)
        endpoints = self.endpoints
        if self._one_locality:
            groups: Any = ((endpoints[selected[0]].locality, selected),)
        else:
            # Stable: the endpoints are already in (address, port) order, so this is (locality, address, port).
            ordered = sorted(selected, key=lambda i: endpoints[i].locality)
            grouped = groupby(ordered, key=lambda i: endpoints[i].locality)
            groups = ((locality, list(members)) for locality, members in grouped)
        fields = [self._locality_field(locality, members, cluster) for locality, members in groups]
        return Encoded(_CLA, name + b"".join(fields), cluster)

    def _locality_field(self, locality: str, members: Sequence[int], cluster: str) -> bytes:
        """One LocalityLbEndpoints of the assignment: locality, its endpoints, the sum of their weights."""
        wire, endpoints = self._wire, self.endpoints
        head = submessage(_LOCALITY, _locality(locality).SerializeToString(deterministic=True)) if locality else b""
        weight = sum(endpoints[i].weight for i in members)
        if weight > _MAX_U32:  # as setting the UInt32Value would: a translation error, not a truncated weight
            raise ValueError(f"{cluster}: locality weight {weight} is out of the uint32 range")
        tail = _LOCALITY_WEIGHTS[weight] if weight < len(_LOCALITY_WEIGHTS) else _locality_weight(weight)
        return submessage(_ENDPOINTS, b"".join([head, *[wire[i] for i in members], tail]))


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
