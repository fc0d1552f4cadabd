"""Route destinations naming a subset that the host's DestinationRule does not define (TM0103)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import SUBSET_NOT_FOUND
from tcpmesh.analysis.context import Context, route_destinations
from tcpmesh.analysis.findings import Finding

__all__ = ["analyze_destination_subsets"]


def analyze_destination_subsets(ctx: Context) -> Iterator[Finding]:
    for vs in ctx.config.virtual_services:
        for dest in route_destinations(ctx, vs):
            subset = dest.route.destination.subset
            if not subset or not dest.host:
                continue
            # The DR the translator would apply for this host (exact before wildcard, proxy namespace first).
            rule = ctx.index.destination_rule(dest.host, ctx.proxy_namespace)
            path = f"{dest.at}.subset"
            if rule is None:
                yield SUBSET_NOT_FOUND.at(
                    vs.meta, path, f"subset {subset!r} not found: no DestinationRule for host {dest.host}"
                )
            elif all(s.name != subset for s in rule.subsets):
                defined = ", ".join(s.name for s in rule.subsets) or "none"
                yield SUBSET_NOT_FOUND.at(
                    vs.meta,
                    path,
                    f"subset {subset!r} not found in DestinationRule {rule.meta.key} for host {dest.host} "
                    f"(subsets: {defined}); its cluster does not exist",
                )
