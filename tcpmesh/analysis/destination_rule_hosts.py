"""DestinationRules whose host is no Service or ServiceEntry (TM0202): the rule applies to nothing."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import DESTINATION_RULE_HOST_NOT_FOUND
from tcpmesh.analysis.context import Context, services_for_host
from tcpmesh.analysis.findings import Finding
from tcpmesh.translator.names import resolve_short_name

__all__ = ["analyze_destination_rule_hosts"]


def analyze_destination_rule_hosts(ctx: Context) -> Iterator[Finding]:
    for dr in ctx.config.destination_rules:
        host = resolve_short_name(dr.host, dr.meta.namespace, ctx.domain)
        if host and not services_for_host(ctx, host):
            shown = f"{dr.host!r} ({host})" if host != dr.host else repr(host)
            yield DESTINATION_RULE_HOST_NOT_FOUND.at(
                dr.meta, "spec.host", f"host {shown} matches no Service or ServiceEntry; the rule applies to nothing"
            )
