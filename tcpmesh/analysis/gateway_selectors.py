"""Gateways whose selector matches none of the known gateway proxies (TM0301): their servers are never used."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import GATEWAY_SELECTS_NO_PROXY
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding

__all__ = ["analyze_gateway_selectors"]


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def analyze_gateway_selectors(ctx: Context) -> Iterator[Finding]:
    gateways = [p for p in ctx.proxies if p.role == "gateway"]
    for gw in ctx.config.gateways:
        if any(p.serves(gw) for p in gateways):
            continue
        known = "; ".join(_labels(p.labels) for p in gateways) or "none"
        yield GATEWAY_SELECTS_NO_PROXY.at(
            gw.meta,
            "spec.selector",
            f"selector {_labels(gw.selector)} matches no gateway proxy (known proxies: {known}); "
            "its servers get no listener (describe other proxies with --proxy-labels)",
        )
