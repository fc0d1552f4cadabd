"""Gateway servers that istiod's mergeGateways skips on a proxy (TM0302): a later server on a (bind, port)
already held by a plaintext server, or a TLS server repeating a host already served there."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import GATEWAY_SERVER_CONFLICT
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import Gateway, Server
from tcpmesh.translator.gateway import merged_servers
from tcpmesh.translator.names import WILDCARD_BIND

__all__ = ["analyze_gateway_conflicts", "skipped_servers"]


def _is_tls(server: Server) -> bool:
    return server.port.protocol.upper() in ("TLS", "HTTPS") and server.tls is not None


def skipped_servers(ctx: Context) -> dict[tuple[str, int], tuple[Gateway, int, Gateway, Server]]:
    """(gateway key, server index) → (gateway, index, kept gateway, kept server) for every server merged away."""
    out: dict[tuple[str, int], tuple[Gateway, int, Gateway, Server]] = {}
    for proxy in ctx.proxies:
        slots = {(slot.bind, slot.port): slot for slot in merged_servers(ctx.index, proxy)}
        for gw in ctx.config.gateways:
            if not proxy.serves(gw):
                continue
            for i, server in enumerate(gw.servers):
                slot = slots.get((server.bind or WILDCARD_BIND, server.port.number))
                # Identity, not equality: two gateways may carry identical servers.
                if slot is None or any(g is gw and s is server for g, s in slot.servers) or not slot.servers:
                    continue
                kept_gw, kept = next(
                    ((g, s) for g, s in slot.servers if not _is_tls(s) or set(s.hosts) & set(server.hosts)),
                    slot.servers[0],
                )
                out.setdefault((gw.meta.key, i), (gw, i, kept_gw, kept))
    return out


def analyze_gateway_conflicts(ctx: Context) -> Iterator[Finding]:
    for gw, i, kept_gw, kept in skipped_servers(ctx).values():
        server = gw.servers[i]
        kept_index = next(k for k, s in enumerate(kept_gw.servers) if s is kept)
        yield GATEWAY_SERVER_CONFLICT.at(
            gw.meta,
            f"spec.servers[{i}]",
            f"port {server.port.number} ({server.port.protocol}) on {server.bind or WILDCARD_BIND} is already held by "
            f"Gateway {kept_gw.meta.key} spec.servers[{kept_index}] ({kept.port.protocol}); istiod skips this server",
        )
