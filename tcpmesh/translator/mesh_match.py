"""Static L4 match predicates for sidecars (pilot tls.go matchTCP / matchTLS).

On the ``mesh`` gateway istiod resolves the source predicates per proxy at generation time: ``gateways``
must name ``mesh`` (an empty list matches), ``sourceLabels`` must be a subset of the proxy's labels,
``port`` must equal the listener (service) port or be 0, and ``sourceNamespace`` must be the proxy's.
``destinationSubnets`` is a runtime predicate and becomes ``filter_chain_match.prefix_ranges`` instead.
"""

from __future__ import annotations

from tcpmesh.model.resources import L4Match, Labels, TLSMatch
from tcpmesh.translator.match import port_match
from tcpmesh.translator.proxy import Proxy

__all__ = ["MESH_GATEWAY", "mesh_gateway_match", "sidecar_match", "source_labels_match", "source_namespace_match"]

MESH_GATEWAY = "mesh"


def mesh_gateway_match(match_gateways: tuple[str, ...]) -> bool:
    """matchTCP compares the raw names with the sidecar's gateway set, which is just ``mesh``."""
    return not match_gateways or MESH_GATEWAY in match_gateways


def source_labels_match(source_labels: Labels, proxy: Proxy) -> bool:
    """labels.Instance(sourceLabels).SubsetOf(proxyLabels): no labels match every proxy."""
    return proxy.selected_by(source_labels)


def source_namespace_match(source_namespace: str, proxy: Proxy) -> bool:
    return not source_namespace or source_namespace == proxy.namespace


def sidecar_match(match: L4Match | TLSMatch, proxy: Proxy, listener_port: int) -> bool:
    return (
        mesh_gateway_match(match.gateways)
        and source_labels_match(match.source_labels, proxy)
        and port_match(match.port, listener_port)
        and source_namespace_match(match.source_namespace, proxy)
    )
