"""L4 match predicates on gateways (pilot gateway.go l4MultiMatch / l4SingleMatch / isPortMatch / isGatewayMatch).

On gateways only ``port`` and ``gateways`` are evaluated: sourceLabels, sourceNamespace and
destinationSubnets apply only to the ``mesh`` gateway (istio/api virtual_service.proto L4MatchAttributes).
"""

from __future__ import annotations

from collections.abc import Sequence

from tcpmesh.model.resources import L4Match, TLSMatch
from tcpmesh.translator.names import resolve_gateway_name

__all__ = ["gateway_match", "l4_multi_match", "l4_single_match", "port_match"]


def port_match(match_port: int, server_port: int) -> bool:
    """``port: 0`` (unset) matches any port."""
    return match_port == 0 or match_port == server_port


def gateway_match(match_gateways: Sequence[str], gateway: str, vs_namespace: str) -> bool:
    """An empty list matches; otherwise it must name the gateway owning the server (``ns/name``)."""
    if not match_gateways:
        return True
    return any(resolve_gateway_name(g, vs_namespace) == gateway for g in match_gateways)


def l4_single_match(match: L4Match | TLSMatch, server_port: int, gateway: str, vs_namespace: str) -> bool:
    return port_match(match.port, server_port) and gateway_match(match.gateways, gateway, vs_namespace)


def l4_multi_match(matches: Sequence[L4Match | TLSMatch], server_port: int, gateway: str, vs_namespace: str) -> bool:
    """Match blocks are OR'ed; inside one block all conditions are AND'ed; no blocks means match."""
    if not matches:
        return True
    return any(l4_single_match(m, server_port, gateway, vs_namespace) for m in matches)
