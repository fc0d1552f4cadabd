"""Route destinations whose host is no Service or ServiceEntry (TM0101, istioctl's ReferencedResourceNotFound).

istiod makes no existence check: the route names a cluster nobody defines and Envoy closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import REFERENCED_RESOURCE_NOT_FOUND
from tcpmesh.analysis.context import Context, route_destinations, services_for_host
from tcpmesh.analysis.findings import Finding

__all__ = ["analyze_destination_hosts"]


def analyze_destination_hosts(ctx: Context) -> Iterator[Finding]:
    for vs in ctx.config.virtual_services:
        for dest in route_destinations(ctx, vs):
            if not dest.host or services_for_host(ctx, dest.host):
                continue
            written = dest.route.destination.host
            shown = f"{written!r} ({dest.host})" if written != dest.host else repr(written)
            yield REFERENCED_RESOURCE_NOT_FOUND.at(
                vs.meta,
                f"{dest.at}.host",
                f"host {shown} is not a Service or ServiceEntry; its cluster does not exist and "
                "connections routed here are closed",
            )
